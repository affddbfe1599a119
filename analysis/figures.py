"""The figures: accuracy vs interval, strength x interval heatmaps, test accuracy vs epoch.

Each ``*_figure`` function takes an aggregated frame and returns ``(Figure, plotted)``, where
``plotted`` holds exactly the numbers drawn; ``save`` writes PNG, PDF and that CSV side by side,
so a reader (or a test) can check a figure without reading pixels.

Figures are built as ``matplotlib.figure.Figure`` on the Agg canvas and never through pyplot:
headless by construction, no global figure registry to leak or close, and no backend switch
inside a process (a Hydra callback, a notebook) that chose its own.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Colormap, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from analysis.tidy import interval_label, line_label, metric_caption, metric_label

PANEL = ["dataset", "model"]
#: Points that are not on the periodic line get their own marker (and x position).
MARKERS = {"offline": "D", "random": "x"}
ROLE_NAMES = {"offline": "offline KD (s = inf)", "random": "random schedule"}
BAND_ALPHA = 0.2


def save(fig: Figure, plotted: pd.DataFrame, stem: Path) -> list[Path]:
    """Write ``stem``.png, .pdf and .csv (the plotted numbers); return the three paths."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    png, pdf, csv = (Path(f"{stem}.{ext}") for ext in ("png", "pdf", "csv"))
    fig.savefig(png, dpi=150)
    fig.savefig(pdf)
    plotted.to_csv(csv, index=False)
    return [png, pdf, csv]


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _panels(frame: pd.DataFrame, title: str) -> tuple[Figure, list[tuple[Axes, pd.DataFrame]]]:
    """One Axes per (dataset, model): accuracies of different tasks never share an axis."""
    groups = list(frame.groupby(PANEL, sort=True))
    fig = _new_figure(5.5 * len(groups) + 3.0, 4.4)
    axes = fig.subplots(1, len(groups), squeeze=False)[0]
    fig.suptitle(title, fontsize=10)
    for ax, ((dataset, model), _) in zip(axes, groups):
        ax.set_title(f"{dataset} / {model}", fontsize=9)
    return fig, [(ax, group) for ax, (_, group) in zip(axes, groups)]


def _colors(labels: list[str]) -> dict[str, Any]:
    """A stable colour per line label, shared by every panel of a figure."""
    cmap = colormaps["tab10" if len(labels) <= 10 else "tab20"]
    return {label: cmap(i % cmap.N) for i, label in enumerate(sorted(labels))}


def _role(schedule: str, interval: float) -> str:
    """Where a point goes: the periodic line (spaced), the massed reference, or its own marker."""
    if math.isinf(interval):
        return "offline"
    if schedule != "periodic":
        return schedule
    return "massed" if interval == 0 else "spaced"


def interval_figure(points: pd.DataFrame, metric: str) -> tuple[Figure, pd.DataFrame]:
    """Mean accuracy vs spacing interval, one line per (method, strength, target), +-sd band.

    The x axis is categorical (the intervals of the sweep, evenly spaced, then the random
    schedule and offline KD at the right edge); massed (s = 0) is a dashed horizontal line in the
    line's colour; n is written next to every point.
    """
    points = points.assign(
        label=[line_label(row) for row in points.itertuples()],
        role=[_role(s, i) for s, i in zip(points["schedule"], points["interval"])],
    )
    colors = _colors(list(points["label"].unique()))
    fig, panels = _panels(points, f"Accuracy vs spacing interval, mean ± sd over seeds\n{metric_caption(metric)}")
    plotted = [_interval_panel(ax, panel, colors, metric) for ax, panel in panels]
    handles = [Line2D([], [], color=colors[label], marker="o", label=label) for label in sorted(colors)]
    handles.append(Line2D([], [], color="grey", linestyle="--", label="massed (s = 0)"))
    handles += [
        Line2D([], [], color="grey", marker=MARKERS.get(role, "x"), linestyle="none", label=ROLE_NAMES.get(role, role))
        for role in sorted(set(points["role"]) - {"spaced", "massed"})
    ]
    fig.legend(handles=handles, loc="outside right upper", fontsize=7)
    return fig, pd.concat(plotted, ignore_index=True)


def _category(role: str, interval: float) -> tuple[int, float, str] | None:
    """A point's place on the categorical x axis, as a sort key ending in its tick label.

    Intervals come first in order, then other schedules run at s = 0 (e.g. 'random'), then
    'offline'; massed points get None (they are a reference line, not a point).
    """
    if role == "massed":
        return None
    if role == "offline":
        return (2, 0.0, "offline")
    return (0, interval, interval_label(interval)) if interval > 0 else (1, 0.0, role)


def _interval_panel(ax: Axes, panel: pd.DataFrame, colors: dict[str, Any], metric: str) -> pd.DataFrame:
    """Draw one (dataset, model) panel; return its rows with the x position each was drawn at."""
    categories = sorted({c for c in map(_category, panel["role"], panel["interval"]) if c is not None})
    position = {category: float(i) for i, category in enumerate(categories)}
    n_lines = panel["label"].nunique()
    rows = []
    for k, (label, line) in enumerate(panel.groupby("label", sort=True)):
        color = colors[label]
        jitter = 0.25 * (k - (n_lines - 1) / 2) / max(n_lines - 1, 1)  # markers of different lines side by side
        for role, part in line.groupby("role"):
            part = part.sort_values("interval")
            if role == "massed":
                xs = [math.nan] * len(part)
                for mean, n in zip(part["mean"], part["n"]):
                    ax.axhline(mean, color=color, linestyle="--", linewidth=1.2, gid=f"massed|{label}")
                    ax.annotate(f"n={n}", xy=(1.0, mean), xycoords=("axes fraction", "data"), xytext=(-2, 2),
                                textcoords="offset points", ha="right", fontsize=6, color=color)
            else:
                shift = 0.0 if role == "spaced" else jitter
                xs = [position[_category(role, interval)] + shift for interval in part["interval"]]
                _draw_points(ax, role, label, color, xs, part)
            rows.append(part.assign(x=xs))
    ax.set_xticks(range(len(categories)), [category[2] for category in categories])
    ax.set_xlim(-0.5, max(len(categories), 1) - 0.5)
    ax.set_xlabel("spacing interval s (epochs); dashed: massed s = 0")
    ax.set_ylabel(metric_label(metric))
    ax.grid(alpha=0.3)
    return pd.concat(rows, ignore_index=True)


def _draw_points(ax: Axes, role: str, label: str, color: Any, xs: list[float], part: pd.DataFrame) -> None:
    """The periodic line with its +-sd band, or separate markers with sd error bars; n on each."""
    means, sds = part["mean"].to_numpy(), part["sd"].fillna(0.0).to_numpy()
    if role == "spaced":
        ax.plot(xs, means, marker="o", color=color, gid=f"spaced|{label}")
        ax.fill_between(xs, means - sds, means + sds, color=color, alpha=BAND_ALPHA, linewidth=0, gid=f"band|{label}")
    else:
        bars = ax.errorbar(xs, means, yerr=sds, fmt=MARKERS.get(role, "x"), color=color, capsize=3)
        bars.lines[0].set_gid(f"{role}|{label}")
    for x, mean, n in zip(xs, means, part["n"]):
        ax.annotate(f"n={n}", (x, mean), xytext=(0, 6), textcoords="offset points", ha="center", fontsize=6, color=color)


HEATMAP_FAMILY = ["method", "strength_name", "dataset", "model", "target"]


def heatmap_families(points: pd.DataFrame) -> list[tuple[tuple[Any, ...], pd.DataFrame]]:
    """Periodic (method, strength name, dataset, model, target) groups with a real 2-D grid."""
    grid = points[(points["schedule"] == "periodic") & np.isfinite(points["interval"]) & points["strength"].notna()]
    return [
        (key, family)
        for key, family in grid.groupby(HEATMAP_FAMILY, sort=True)
        if family["strength"].nunique() >= 2 and family["interval"].nunique() >= 2
    ]


def heatmap_figure(points: pd.DataFrame, metric: str) -> tuple[Figure, pd.DataFrame] | None:
    """Strength x interval heatmaps of mean accuracy and of the gain over massed (s = 0).

    One row of two panels per family; cells carry their value and n; the best cell of each
    panel is boxed (for the gain, the best spaced cell). None when no family has a 2-D grid.
    """
    families = heatmap_families(points)
    if not families:
        return None
    fig = _new_figure(13.0, 1.2 + 3.6 * len(families))
    axes = fig.subplots(len(families), 2, squeeze=False)
    fig.suptitle(f"Strength x interval, mean over seeds; boxed: best cell\n{metric_caption(metric)}", fontsize=10)
    plotted = []
    for (mean_ax, gain_ax), (key, family) in zip(axes, families):
        method, strength_name, dataset, model, target = key
        massed = family[family["interval"] == 0].set_index("strength")["mean"]
        family = family.assign(gain=family["mean"] - family["strength"].map(massed))
        grid = {v: family.pivot(index="strength", columns="interval", values=v) for v in ("mean", "sd", "n", "gain")}
        texts = [[_cell_text(m, s, c) for m, s, c in zip(*row)]
                 for row in zip(grid["mean"].values, grid["sd"].values, grid["n"].values)]
        best_mean = _draw_heatmap(mean_ax, grid["mean"], texts, colormaps["viridis"], Normalize(),
                                  metric_label(metric))
        gain = grid["gain"]
        spread = max(float(np.nanmax(np.abs(gain.to_numpy(dtype=float)), initial=0.0)), 1e-9)
        gain_texts = [["" if math.isnan(g) else f"{g:+.2f}" for g in row] for row in gain.values]
        best_gain = _draw_heatmap(gain_ax, gain, gain_texts, colormaps["RdBu"], Normalize(-spread, spread),
                                  "gain over massed s = 0 (points)", best_of=gain.loc[:, gain.columns > 0])
        for ax, what in ((mean_ax, "mean"), (gain_ax, "gain over massed")):
            ax.set_title(f"{method} [{target}], {dataset} / {model}: {what}", fontsize=9)
            ax.set_ylabel(str(strength_name))
        every_cell = pd.MultiIndex.from_product([grid["mean"].index, grid["mean"].columns], names=["strength", "interval"])
        cells = family.set_index(["strength", "interval"])[list(grid)].reindex(every_cell).reset_index()
        at = list(zip(cells["strength"], cells["interval"]))
        plotted.append(cells.assign(best_mean=[c == best_mean for c in at], best_gain=[c == best_gain for c in at],
                                    **dict(zip(HEATMAP_FAMILY, key))))
    columns = [*HEATMAP_FAMILY, "strength", "interval", "mean", "sd", "n", "gain", "best_mean", "best_gain"]
    return fig, pd.concat(plotted, ignore_index=True)[columns]


def _cell_text(mean: float, sd: float, n: float) -> str:
    if math.isnan(mean):
        return "missing"
    spread = "" if math.isnan(sd) else f"±{sd:.1f}"
    return f"{mean:.1f}{spread}\nn={int(n)}"


def _draw_heatmap(ax: Axes, grid: pd.DataFrame, texts: list[list[str]], cmap: Colormap, norm: Normalize,
                  bar_label: str, best_of: pd.DataFrame | None = None) -> tuple[float, float] | None:
    """Draw one annotated grid; box the largest cell of ``best_of`` (default the grid itself).

    Returns the (strength, interval) of the boxed cell, or None if the grid is all missing.
    """
    values = grid.to_numpy(dtype=float)
    cmap = cmap.with_extremes(bad="lightgrey")
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, norm=norm, aspect="auto", origin="lower")
    ax.figure.colorbar(image, ax=ax, label=bar_label)
    ax.set_xticks(range(grid.shape[1]), [interval_label(i) + ("\n(massed)" if i == 0 else "") for i in grid.columns])
    ax.set_yticks(range(grid.shape[0]), [f"{s:g}" for s in grid.index])
    ax.set_xlabel("spacing interval s (epochs)")
    for (i, j), text in np.ndenumerate(np.array(texts, dtype=object)):
        value = values[i, j]
        shade = "black" if math.isnan(value) or _luminance(cmap(norm(value))) > 0.5 else "white"
        ax.text(j, i, text, ha="center", va="center", fontsize=7, color=shade)
    candidates = grid if best_of is None else best_of
    scores = candidates.to_numpy(dtype=float)
    if np.isnan(scores).all():
        return None
    row, column = np.unravel_index(np.nanargmax(scores), scores.shape)
    strength, interval = candidates.index[row], candidates.columns[column]
    i, j = grid.index.get_loc(strength), grid.columns.get_loc(interval)
    ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2.5, gid="best"))
    return float(strength), float(interval)


def _luminance(rgba: tuple[float, ...]) -> float:
    red, green, blue = rgba[:3]
    return 0.299 * red + 0.587 * green + 0.114 * blue


def history_figure(curves: pd.DataFrame, title: str) -> tuple[Figure, pd.DataFrame]:
    """Test accuracy vs epoch, mean +-sd over seeds, one line per chosen cell."""
    colors = _colors(list(curves["label"].unique()))
    fig, panels = _panels(curves, title)
    for ax, panel in panels:
        for label, line in panel.groupby("label", sort=True):
            line = line.sort_values("epoch")
            means, sds = line["mean"].to_numpy(), line["sd"].fillna(0.0).to_numpy()
            n = ",".join(str(v) for v in sorted(set(line["n"])))
            ax.plot(line["epoch"], means, color=colors[label], label=f"{label} (n={n})", gid=f"history|{label}")
            ax.fill_between(line["epoch"], means - sds, means + sds, color=colors[label], alpha=BAND_ALPHA, linewidth=0)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("test accuracy (%) at each epoch (history.csv)", fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    return fig, curves.reset_index(drop=True)
