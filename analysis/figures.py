"""The figures: accuracy vs interval, gain vs interval, strength x interval heatmaps, accuracy vs epoch.

Each ``*_figure`` function takes aggregated frames and returns ``(Figure, plotted)``, where
``plotted`` holds exactly the numbers drawn (band edges as drawn, x positions as drawn); ``save``
writes PNG, PDF and that CSV side by side, so a reader (or a test) can check a figure without
reading pixels.

Made to be printed: one column (3.3 in) for one panel, two columns (6.9 in) for more, no text
under 7 pt at that size, TrueType (Type 42) fonts in the PDF, words a reader knows. Intervals keep
their ratios on a symlog axis (massed s = 0 at the left, its linear part); the random schedule and
offline KD sit on a small categorical axis beside it. Lines of one panel are dodged by a few
points so that coinciding markers and error bars stay visible; the CSV holds the undodged x.

Figures are built as ``matplotlib.figure.Figure`` on the Agg canvas and never through pyplot:
headless by construction, no global figure registry, no backend switch in a caller's process.
"""

from __future__ import annotations

import functools
import logging
import math
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import matplotlib
import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Colormap, Normalize
from matplotlib.figure import Figure, SubFigure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator, NullLocator
from matplotlib.transforms import Transform, offset_copy

from analysis.gains import MASSED
from analysis.labels import (
    comparison_words,
    control_words,
    interval_label,
    line_label,
    method_words,
    metric_short,
    metric_words,
    target_words,
)

ONE_COLUMN_IN, TWO_COLUMNS_IN = 3.3, 6.9
MIN_FONT_PT = 7.0
STYLE = {
    "font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "figure.titlesize": 8,
    "xtick.labelsize": 7, "ytick.labelsize": 7, "legend.fontsize": 7, "legend.title_fontsize": 7,
    "lines.linewidth": 1.2, "lines.markersize": 4, "axes.linewidth": 0.6, "grid.linewidth": 0.4,
    "pdf.fonttype": 42, "ps.fonttype": 42,  # TrueType, not Type 3: some venues reject Type 3 fonts
}
PANEL = ["dataset", "model"]
#: Points that are not on the periodic line get their own marker on the categorical side axis.
MARKERS = {"offline": "D", "random": "X", "control": "^", "massed": "s", "spaced": "o"}
ROLE_WORDS = {"offline": "offline KD (s = inf)", "random": "random schedule", "massed": "massed (s = 0); dashed: its level"}
SIDE_WORDS = {"offline": "offline", "random": "random"}  # tick labels of the narrow side axis
BAND_ALPHA = 0.18
DODGE_PT = 2.5
CHARS_PER_INCH = 15.5  # for wrapping 8 pt titles to the figure's width
F = TypeVar("F", bound=Callable[..., Any])


def styled(build: F) -> F:
    """Build the figure under STYLE: text sizes are fixed when an artist is created, not when saved."""
    @functools.wraps(build)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with matplotlib.rc_context(STYLE):
            return build(*args, **kwargs)
    return wrapper  # type: ignore[return-value]


def save(fig: Figure, plotted: pd.DataFrame, stem: Path, caption: str | None = None) -> list[Path]:
    """Write ``stem``.png, .pdf and .csv (the plotted numbers); return the three paths.

    The image carries a short title; the long ``caption`` (what the marks mean, how the numbers were
    made) goes into the PDF's metadata (Subject) and, from the report, into summary.md.
    """
    # Embedding TrueType fonts runs fontTools' subsetter, which logs every table at INFO: under a Hydra
    # multirun (INFO to the console) that would bury the verdicts in font-table chatter.
    logging.getLogger("fontTools").setLevel(logging.WARNING)
    stem.parent.mkdir(parents=True, exist_ok=True)
    png, pdf, csv = (Path(f"{stem}.{ext}") for ext in ("png", "pdf", "csv"))
    with matplotlib.rc_context(STYLE):
        fig.savefig(png, dpi=300)
        fig.savefig(pdf, metadata={"Title": fig.get_suptitle(), "Subject": caption or ""})
    plotted.to_csv(csv, index=False)
    return [png, pdf, csv]


def caption(kind: str, metric: str) -> str:
    """The long caption of a figure kind: what every mark means, for the paper, the PDF and summary.md."""
    words = metric_words(metric)
    if kind == "interval":
        return (f"{words.capitalize()} vs spacing interval s (epochs, log scale; 0 = massed, square): mean ± sd over "
                "n seeds (n in the legend, written at a point where it differs). The dashed line is massed's level; "
                "hollow triangles are controls at their spaced cell's s; random and offline sit on the side axis.")
    if kind == "gain":
        return (f"Gain in points of {words}, spaced minus massed (circles) and spaced minus its control (hollow "
                "triangles): mean with its 95 % CI (paired t over seeds; Welch where marked unpaired), the per-seed "
                "differences as dots of the series' colour, the interval chosen on validation ringed.")
    if kind == "heatmap":
        return (f"Strength x spacing interval, {words}: mean over seeds (dashed: interval best on validation) and "
                "gain over massed (* : 95 % CI excludes 0; box: the largest gain, where its CI excludes 0).")
    return f"Test accuracy (%) vs epoch, mean ± sd over seeds: {kind}."


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _width(panels: int) -> float:
    return ONE_COLUMN_IN if panels <= 1 else TWO_COLUMNS_IN


def _title(fig: Figure, text: str) -> None:
    fig.suptitle(textwrap.fill(text, int(fig.get_figwidth() * CHARS_PER_INCH)))


def _colors(labels: list[str]) -> dict[str, Any]:
    """A stable colour per line label, shared by every panel of a figure."""
    cmap = colormaps["tab10" if len(labels) <= 10 else "tab20"]
    return {label: cmap(i % cmap.N) for i, label in enumerate(sorted(labels))}


def _dodged(ax: Axes, slot: int, slots: int) -> Transform:
    """Data coordinates shifted sideways by a few points: slot k of n, centred on the true x."""
    return offset_copy(ax.transData, fig=ax.get_figure(root=True), x=DODGE_PT * (slot - (slots - 1) / 2), units="points")


def _role(schedule: str, interval: float, control_kind: Any) -> str:
    """Where a point goes: a control, the periodic line (massed / spaced), or a side-axis marker."""
    if isinstance(control_kind, str):
        return "control"
    if math.isinf(interval):
        return "offline"
    if schedule != "periodic":
        return schedule
    return "massed" if interval == 0 else "spaced"


def _labelled(frame: pd.DataFrame) -> pd.DataFrame:
    """Add 'label' (line name in reader words) and 'role'; name targets only when a method shows several.

    A control run is labelled with the strength of the spaced cell it controls, so it joins that line.
    """
    with_target = bool(len(frame)) and frame.groupby("method")["target"].nunique().max() > 1
    named = frame.assign(strength=frame["control_strength"].where(frame["control_kind"].notna(), frame["strength"]))
    return frame.assign(
        label=[line_label(row, with_target) for row in named.itertuples()],
        role=[_role(s, i, c) for s, i, c in zip(frame["schedule"], frame["interval"], frame["control_kind"])],
    )


def _panel_grid(fig: Figure, count: int) -> list[SubFigure]:
    columns = min(count, 3)
    rows = math.ceil(count / columns)
    return list(fig.subfigures(rows, columns, squeeze=False).flat)[:count]


def _panel_axes(sub: SubFigure, extras: list[str]) -> tuple[Axes, Axes | None]:
    """The interval axis, and a narrow categorical axis sharing its y for random / offline points."""
    if not extras:
        return sub.subplots(), None
    main, side = sub.subplots(1, 2, sharey=True, width_ratios=[4, max(len(extras), 1) * 0.9])
    side.set_xticks(range(len(extras)), [SIDE_WORDS.get(e, e) for e in extras])
    side.set_xlim(-0.6, len(extras) - 0.4)
    side.tick_params(axis="y", left=False)
    side.grid(alpha=0.3, axis="y")
    return main, side


def _interval_axis(ax: Axes, intervals: list[float], with_massed: bool) -> None:
    """Symlog x axis: ratios of intervals kept, massed s = 0 at the left in the linear part."""
    positive = sorted({i for i in intervals if 0 < i < math.inf})
    linthresh = positive[0] if positive else 1.0
    ax.set_xscale("symlog", linthresh=linthresh, linscale=0.35)
    ticks = ([0.0] if with_massed else []) + positive
    ax.set_xticks(ticks, [interval_label(t) for t in ticks])
    ax.xaxis.set_minor_locator(NullLocator())
    right = (positive[-1] if positive else 1.0) * 1.35
    left = -0.25 * linthresh if with_massed else linthresh / 1.35
    ax.set_xlim(left, right)
    ax.set_xlabel("spacing interval s (epochs, log scale)" + ("; 0 = massed" if with_massed else ""))
    ax.grid(alpha=0.3)


def _y_limits(ax: Axes, lows: list[float], highs: list[float], clip: tuple[float, float] | None) -> None:
    values = [v for v in [*lows, *highs] if math.isfinite(v)]
    if not values:
        return
    low, high = min(values), max(values)
    pad = 0.08 * (high - low) or 1.0
    low, high = low - pad, high + pad
    if clip is not None:
        low, high = max(clip[0], low), min(clip[1], high)
    ax.set_ylim(low, high)


def _modal_n(values: pd.Series) -> int:
    return int(values.mode().min()) if len(values) else 0


@styled
def interval_figure(points: pd.DataFrame, metric: str) -> tuple[Figure, pd.DataFrame]:
    """Mean accuracy vs spacing interval, one line per (method, strength, target, series), ± sd band.

    The line starts at massed (s = 0, square marker); the band is clipped to 0-100 %; the random
    schedule and offline KD are markers with sd bars on the side axis; a control run is a hollow
    triangle at the interval of the spaced cell it controls. Each line's usual n is in the legend,
    and n is written at a point only where it differs from its line's.
    """
    points = _labelled(points)
    panels = list(points.groupby(PANEL, sort=True))
    colors = _colors(list(points["label"].unique()))
    usual_n = points.groupby("label")["n"].agg(_modal_n).to_dict()
    fig = _new_figure(_width(len(panels)), 0.6 + 2.5 * math.ceil(len(panels) / 3) + 0.14 * len(colors))
    plotted = [_interval_panel(sub, key, panel, colors, usual_n)
               for sub, (key, panel) in zip(_panel_grid(fig, len(panels)), panels)]
    _title(fig, f"Accuracy vs spacing interval ({metric_short(metric)})")
    _legend(fig, colors, sorted(set(points["role"]) - {"spaced"}), points, n_of=usual_n)
    return fig, pd.concat(plotted, ignore_index=True)


def _extras(roles: list[str]) -> list[str]:
    """The side axis categories of a panel: random (and other schedules), then offline."""
    return sorted(set(roles) - {"massed", "spaced"}, key=lambda role: (role == "offline", role))


def _x_role(row: Any) -> str:
    """The role that decides a point's axis: a control takes its spaced cell's."""
    if row.role == "control":
        return _role(row.control_schedule, row.control_interval, None)
    return row.role


def _x_of(row: Any, extras: list[str]) -> tuple[str, float]:
    """Which axis a point is drawn on and its x there (a control sits at its spaced cell's place)."""
    role, interval, schedule = row.role, row.interval, row.schedule
    if role == "control":
        interval, schedule = row.control_interval, row.control_schedule
        role = _role(schedule, interval, None)
    if role in ("massed", "spaced"):
        return "interval", float(interval)
    return "side", float(extras.index(role))


def _interval_panel(sub: SubFigure, key: tuple[str, str], panel: pd.DataFrame, colors: dict[str, Any],
                    usual_n: dict[str, int]) -> pd.DataFrame:
    """Draw one (dataset, model) panel; return its rows with the axis and x each was drawn at."""
    extras = _extras([_x_role(row) for row in panel.itertuples()])
    main, side = _panel_axes(sub, extras)
    sub.suptitle(f"{key[0]} / {key[1]}")
    labels = sorted(panel["label"].unique())
    rows, lows, highs = [], [], []
    for slot, label in enumerate(labels):
        line = panel[panel["label"] == label]
        color = colors[label]
        placed = line.assign(**dict(zip(("axis", "x"), zip(*[_x_of(r, extras) for r in line.itertuples()]))))
        placed = placed.assign(band_low=(placed["mean"] - placed["sd"].fillna(0)).clip(0, 100),
                               band_high=(placed["mean"] + placed["sd"].fillna(0)).clip(0, 100))
        periodic = placed[placed["role"].isin(["massed", "spaced"])].sort_values("x")
        shift = _dodged(main, slot, len(labels))
        if len(periodic):
            main.plot(periodic["x"], periodic["mean"], marker="o", color=color, transform=shift, gid=f"line|{label}")
            main.fill_between(periodic["x"], periodic["band_low"], periodic["band_high"], color=color, alpha=BAND_ALPHA,
                              linewidth=0, transform=shift, gid=f"band|{label}")
            massed = periodic[periodic["role"] == "massed"]
            main.plot(massed["x"], massed["mean"], linestyle="none", marker=MARKERS["massed"], markersize=5,
                      color=color, transform=shift, gid=f"massed|{label}")
            for ax in filter(None, (main, side)):  # massed's level across the panel: what each interval must beat
                for level in massed["mean"]:
                    ax.axhline(level, color=color, linestyle="--", linewidth=0.8, alpha=0.8, zorder=1,
                               gid=f"massed_level|{label}")
        for row in placed[~placed["role"].isin(["massed", "spaced"])].itertuples():
            ax = main if row.axis == "interval" else side
            hollow = row.role == "control"
            bars = ax.errorbar([row.x], [row.mean], yerr=[[row.mean - row.band_low], [row.band_high - row.mean]],
                               fmt=MARKERS.get(row.role, "X"), color=color, capsize=2, elinewidth=0.8,
                               markerfacecolor="white" if hollow else color,
                               transform=_dodged(ax, slot, len(labels)))
            bars.lines[0].set_gid(f"{row.role}|{label}")
        for row in placed[placed["n"] != usual_n[label]].itertuples():
            ax = main if row.axis == "interval" else side
            ax.annotate(f"n={row.n}", (row.x, row.mean), xytext=(DODGE_PT * (slot - (len(labels) - 1) / 2) + 3, -9),
                        textcoords="offset points", fontsize=MIN_FONT_PT, color=color, gid=f"n|{label}")
        lows += placed["band_low"].tolist()
        highs += placed["band_high"].tolist()
        rows.append(placed)
    intervals = panel.loc[panel["role"].isin(["massed", "spaced"]), "interval"].tolist()
    intervals += panel.loc[panel["role"] == "control", "control_interval"].tolist()
    _interval_axis(main, intervals, with_massed=(panel["role"] == "massed").any() or not intervals)
    _y_limits(main, lows, highs, (0.0, 100.0))
    main.set_ylabel("test accuracy (%)")
    return pd.concat(rows, ignore_index=True).assign(panel=f"{key[0]} / {key[1]}")


def _legend(fig: Figure, colors: dict[str, Any], roles: list[str], frame: pd.DataFrame,
            extra: list[Line2D] | None = None, n_of: dict[str, int] | None = None) -> None:
    """Lines by colour (with their usual n of seeds), then what each marker means, below the panels."""
    handles = [Line2D([], [], color=colors[label], marker="o",
                      label=label if n_of is None else f"{label} (n = {n_of[label]})") for label in sorted(colors)]
    for role in roles:
        if role == "control":
            kinds = sorted(frame.loc[frame["role"] == "control", "control_kind"].dropna().unique())
            text = ", ".join(control_words(kind) for kind in kinds) + ", at its spaced cell's s"
        else:
            text = ROLE_WORDS.get(role, f"{role} schedule")
        handles.append(Line2D([], [], color="0.35", marker=MARKERS.get(role, "X"), linestyle="none", label=text,
                              markerfacecolor="white" if role == "control" else "0.35"))
    handles += extra or []
    columns = 1 if fig.get_figwidth() <= ONE_COLUMN_IN else 2
    fig.legend(handles=handles, loc="outside lower center", ncols=columns, frameon=False)


@styled
def gain_figure(table: pd.DataFrame, pairs: pd.DataFrame, metric: str) -> tuple[Figure, pd.DataFrame]:
    """Gain over massed (and over controls) vs interval: mean with its 95 % interval as error bars,
    the per-seed differences as dots, the interval best on validation ringed.

    ``table`` / ``pairs`` come from ``gains.gains``. Welch (unpaired) rows have no dots.
    """
    table = _labelled(table)
    table = table.assign(gain_series=[_series(label, c) for label, c in zip(table["label"], table["comparison"])])
    pairs = pairs.merge(table[[*_JOIN, "label", "role"]], on=_JOIN, how="inner")
    panels = list(table.groupby(PANEL, sort=True))
    colors = _series_colors(table)
    fig = _new_figure(_width(len(panels)), 0.7 + 2.5 * math.ceil(len(panels) / 3) + 0.14 * (len(colors) + 2))
    controls = bool(set(table["comparison"]) - {MASSED})
    plotted = [_gain_panel(sub, key, panel, pairs, colors, controls) for sub, (key, panel) in
               zip(_panel_grid(fig, len(panels)), panels)]
    _title(fig, f"Gain over massed{' and over the control' if controls else ''} ({metric_short(metric)})")
    shown = table.sort_values(["label", "comparison"], key=lambda c: c.ne(MASSED) if c.name == "comparison" else c)
    handles = [Line2D([], [], color=colors[series], linestyle="none", label=series,
                      marker="o" if comparison == MASSED else MARKERS["control"],
                      markerfacecolor=colors[series] if comparison == MASSED else "white")
               for series, comparison in dict(zip(shown["gain_series"], shown["comparison"])).items()]
    if table["best_on_val"].astype(bool).any():
        handles.append(Line2D([], [], color="0.35", marker="o", markersize=9, markerfacecolor="none", linestyle="none",
                              label="interval chosen on validation"))
    else:
        why = "no validation split" if table["val_mean"].isna().all() else "no interval could be chosen (see the verdict)"
        handles.append(Line2D([], [], linestyle="none", label=f"{why}: none ringed"))
    roles = sorted(set(table["role"]) - {"spaced", "massed"})
    role_handles = [Line2D([], [], color="0.35", marker=MARKERS.get(role, "X"), linestyle="none",
                           label=ROLE_WORDS.get(role, f"{role} schedule")) for role in roles]
    columns = 1 if fig.get_figwidth() <= ONE_COLUMN_IN else 2
    fig.legend(handles=handles + role_handles, loc="outside lower center", ncols=columns, frameon=False)
    return fig, pd.concat(plotted, ignore_index=True)


def _series_colors(table: pd.DataFrame) -> dict[str, Any]:
    """Each gain series its own colour, its seed dots too: over massed in its line's colour (as in the
    interval figure), over a control in a colour after all the lines'."""
    labels = sorted(table["label"].unique())
    controls = sorted(set(table.loc[table["comparison"] != MASSED, "gain_series"]))
    cmap = colormaps["tab10" if len(labels) + len(controls) <= 10 else "tab20"]
    colors = {_series(label, MASSED): color for label, color in _colors(labels).items()}
    return colors | {series: cmap((len(labels) + i) % cmap.N) for i, series in enumerate(controls)}


def _series(label: str, comparison: str) -> str:
    """A gain series' name: 'EMA, decay 0.7: over massed', 'EMA, decay 0.7: over its matched-horizon control'."""
    return f"{label}: over {comparison_words(comparison)}"


_JOIN = ["method", "schedule", "interval", "strength_name", "strength", "dataset", "model", "target", "series",
         "comparison"]


def _gain_panel(sub: SubFigure, key: tuple[str, str], panel: pd.DataFrame, pairs: pd.DataFrame,
                colors: dict[str, Any], controls: bool) -> pd.DataFrame:
    extras = _extras(panel["role"].tolist())
    main, side = _panel_axes(sub, extras)
    sub.suptitle(f"{key[0]} / {key[1]}")
    slots = sorted(set(zip(panel["label"], panel["comparison"])), key=lambda s: (s[0], s[1] != MASSED, s[1]))
    rows, lows, highs = [], [0.0], [0.0]
    for slot, (label, comparison) in enumerate(slots):
        color = colors[_series(label, comparison)]
        part = panel[(panel["label"] == label) & (panel["comparison"] == comparison)]
        placed = part.assign(**dict(zip(("axis", "x"), zip(*[_x_of(r, extras) for r in part.itertuples()]))))
        marker_of = MARKERS["control"] if comparison != MASSED else None
        for row in placed.itertuples(index=False):
            ax = main if row.axis == "interval" else side
            shift = _dodged(ax, slot, len(slots))
            has_ci = math.isfinite(row.low) and math.isfinite(row.high)
            # a gain lies in -100..100 points; the interval is drawn within that (the CSV keeps both)
            bar_low, bar_high = (max(row.low, -100.0), min(row.high, 100.0)) if has_ci else (row.mean, row.mean)
            yerr = [[row.mean - bar_low], [bar_high - row.mean]] if has_ci else None
            bars = ax.errorbar([row.x], [row.mean], yerr=yerr, fmt=marker_of or MARKERS.get(row.role, "o"), color=color,
                               capsize=2, elinewidth=0.9, transform=shift,
                               markerfacecolor="white" if marker_of else color)
            bars.lines[0].set_gid(f"gain|{comparison}|{label}")
            seeds = pairs[(pairs["label"] == label) & (pairs["comparison"] == comparison)
                          & (pairs["schedule"] == row.schedule) & (pairs["interval"] == row.interval)
                          & (pairs["dataset"] == key[0]) & (pairs["model"] == key[1])]
            ax.plot([row.x] * len(seeds), seeds["diff"], linestyle="none", marker=".", markersize=3, alpha=0.6,
                    color=color, transform=shift, gid=f"seeds|{comparison}|{label}")
            if row.paired == "no":
                ax.annotate("unpaired", (row.x, row.mean), xytext=(DODGE_PT * (slot - (len(slots) - 1) / 2) + 4, 2),
                            textcoords="offset points", fontsize=MIN_FONT_PT, color=color, gid=f"unpaired|{label}")
            if row.best_on_val:
                ax.plot([row.x], [row.mean], linestyle="none", marker="o", markersize=9, markerfacecolor="none",
                        markeredgecolor=color, transform=shift, gid=f"best_on_val|{label}")
            lows += [bar_low, *seeds["diff"]]
            highs += [bar_high, *seeds["diff"]]
            rows.append(pd.DataFrame([{**row._asdict(), "kind": "gain", "bar_low": bar_low, "bar_high": bar_high}]))
            rows.append(seeds.assign(kind="seed", axis=row.axis, x=row.x, label=label)[
                ["kind", *_JOIN, "label", "axis", "x", "seed", "diff"]])
    for ax in filter(None, (main, side)):
        ax.axhline(0.0, color="0.3", linewidth=0.8, linestyle="--", zorder=0)
    _interval_axis(main, panel.loc[panel["role"] == "spaced", "interval"].tolist(), with_massed=False)
    _y_limits(main, lows, highs, (-100.0, 100.0))
    main.set_ylabel("gain (points)" if controls else "gain over massed (points)")
    columns = ["kind", *_JOIN, "label", "axis", "x", "mean", "low", "high", "bar_low", "bar_high", "n", "n_reference",
               "paired", "best_on_val", "best_on_test", "seed", "diff"]
    return pd.concat(rows, ignore_index=True).reindex(columns=columns).assign(panel=f"{key[0]} / {key[1]}")


HEATMAP_FAMILY = ["method", "strength_name", "dataset", "model", "target", "series"]


def heatmap_families(points: pd.DataFrame) -> list[tuple[tuple[Any, ...], pd.DataFrame]]:
    """Periodic (method, strength name, dataset, model, target, series) groups with a real 2-D grid."""
    grid = points[(points["schedule"] == "periodic") & np.isfinite(points["interval"]) & points["strength"].notna()
                  & points["control_kind"].isna()]
    return [
        (key, family)
        for key, family in grid.groupby(HEATMAP_FAMILY, sort=True, dropna=False)
        if family["strength"].nunique() >= 2 and family["interval"].nunique() >= 2
    ]


@styled
def heatmap_figure(points: pd.DataFrame, table: pd.DataFrame, metric: str) -> tuple[Figure, pd.DataFrame] | None:
    """Strength x interval heatmaps of mean accuracy and of the paired gain over massed (s = 0).

    One row of two panels per family. Mean panel: the interval best on validation for each
    strength is outlined (dashed). Gain panel: ``*`` marks a gain whose 95 % interval excludes 0,
    and the largest gain is boxed as "best" only when its interval excludes 0. n is written in a
    cell only where it differs from the usual n. None when no family has a 2-D grid.
    """
    families = heatmap_families(points)
    if not families:
        return None
    fig = _new_figure(TWO_COLUMNS_IN, 0.5 + 2.3 * len(families))
    axes = fig.subplots(len(families), 2, squeeze=False)
    usual_n = _modal_n(pd.concat([family["n"] for _, family in families]))
    _title(fig, f"Strength x spacing interval: mean accuracy and gain over massed ({metric_short(metric)}; "
                f"n = {usual_n} unless marked)")
    plotted = []
    for (mean_ax, gain_ax), (key, family) in zip(axes, families):
        cells = _heatmap_cells(family, table, key)
        grids = {v: cells.pivot(index="strength", columns="interval", values=v) for v in cells.columns
                 if v not in ("strength", "interval")}
        texts = [[_mean_text(m, n, usual_n) for m, n in zip(*row)] for row in zip(grids["mean"].values, grids["n"].values)]
        _draw_heatmap(mean_ax, grids["mean"], texts, colormaps["viridis"], Normalize(), "test accuracy (%)",
                      dashed=grids["best_on_val"])
        gain = grids["gain"]
        spread = max(float(np.nanmax(np.abs(gain.to_numpy(dtype=float)), initial=0.0)), 1e-9)
        gain_texts = [[_gain_text(g, low, high) if interval else "0" for g, low, high, interval in zip(*row, gain.columns)]
                      for row in zip(gain.values, grids["gain_low"].values, grids["gain_high"].values)]
        _draw_heatmap(gain_ax, gain, gain_texts, colormaps["RdBu"], Normalize(-spread, spread),
                      "gain over massed (points)", boxed=grids["boxed"])
        method, _, dataset, model, target, series = key
        name = method_words(method) + (f": {target_words(target)}" if _shows_target(points, method) else "")
        suffix = f" ({series})" if series else ""
        mean_ax.set_title(f"{name}, {dataset} / {model}{suffix}: mean")
        gain_ax.set_title(f"{name}: gain over massed")
        for ax in (mean_ax, gain_ax):
            ax.set_ylabel(str(family["strength_name"].iloc[0]).replace("_", " "))
        plotted.append(cells.assign(**dict(zip(HEATMAP_FAMILY, key))))
    columns = [*HEATMAP_FAMILY, "strength", "interval", "mean", "sd", "n", "gain", "gain_low", "gain_high",
               "best_on_val", "boxed"]
    return fig, pd.concat(plotted, ignore_index=True)[columns]


def _shows_target(points: pd.DataFrame, method: str) -> bool:
    return points.loc[points["method"] == method, "target"].nunique() > 1


def _heatmap_cells(family: pd.DataFrame, table: pd.DataFrame, key: tuple[Any, ...]) -> pd.DataFrame:
    """Every strength x interval of a family: mean, sd, n, paired gain and its CI, selection marks."""
    rows = table[(table["comparison"] == MASSED) & (table["schedule"] == "periodic")]
    for column, value in zip(HEATMAP_FAMILY, key):
        rows = rows[rows[column] == value] if isinstance(value, str) or not pd.isna(value) else rows[rows[column].isna()]
    gains = rows.set_index(["strength", "interval"])[["mean", "low", "high", "best_on_val"]].rename(
        columns={"mean": "gain", "low": "gain_low", "high": "gain_high"})
    every = pd.MultiIndex.from_product([sorted(family["strength"].unique()), sorted(family["interval"].unique())],
                                       names=["strength", "interval"])
    cells = family.set_index(["strength", "interval"])[["mean", "sd", "n"]].join(gains).reindex(every)
    cells.loc[cells.index.get_level_values("interval") == 0, ["gain", "gain_low", "gain_high"]] = 0.0
    cells["best_on_val"] = cells["best_on_val"].astype("boolean").fillna(False).astype(bool)
    cells["boxed"] = False
    candidates = cells[(cells.index.get_level_values("interval") > 0) & cells["gain"].notna()]
    if len(candidates):
        best = candidates["gain"].idxmax()
        cells.loc[best, "boxed"] = bool(cells.loc[best, "gain_low"] > 0)
    return cells.reset_index()


def _mean_text(mean: float, n: float, usual_n: int) -> str:
    if math.isnan(mean):
        return "missing"
    return f"{mean:.1f}" + ("" if int(n) == usual_n else f"\nn={int(n)}")


def _gain_text(gain: float, low: float, high: float) -> str:
    if math.isnan(gain):
        return ""
    star = "*" if (low > 0 or high < 0) else ""
    return f"{gain:+.1f}{star}"


def _draw_heatmap(ax: Axes, grid: pd.DataFrame, texts: list[list[str]], cmap: Colormap, norm: Normalize,
                  bar_label: str, dashed: pd.DataFrame | None = None, boxed: pd.DataFrame | None = None) -> None:
    """Draw one annotated grid; outline the ``dashed`` cells, box the ``boxed`` ones (gid 'best')."""
    values = grid.to_numpy(dtype=float)
    cmap = cmap.with_extremes(bad="lightgrey")
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, norm=norm, aspect="auto", origin="lower")
    ax.get_figure(root=True).colorbar(image, ax=ax, label=bar_label, shrink=0.9)
    ax.set_xticks(range(grid.shape[1]), [interval_label(i) if i else "0\nmassed" for i in grid.columns])
    ax.set_yticks(range(grid.shape[0]), [f"{s:g}" for s in grid.index])
    ax.set_xlabel("spacing interval s (epochs)")
    for (i, j), text in np.ndenumerate(np.array(texts, dtype=object)):
        value = values[i, j]
        shade = "black" if math.isnan(value) or _luminance(cmap(norm(value))) > 0.5 else "white"
        ax.text(j, i, text, ha="center", va="center", fontsize=MIN_FONT_PT, color=shade)
    for marks, style, gid in ((dashed, "--", "best_on_val"), (boxed, "-", "best")):
        if marks is None:
            continue
        for (i, j), marked in np.ndenumerate(marks.to_numpy(dtype=bool)):
            if marked:
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=1.5,
                                       linestyle=style, gid=gid))


def _luminance(rgba: tuple[float, ...]) -> float:
    red, green, blue = rgba[:3]
    return 0.299 * red + 0.587 * green + 0.114 * blue


@styled
def history_figure(curves: pd.DataFrame, title: str) -> tuple[Figure, pd.DataFrame]:
    """Test accuracy vs epoch, mean ± sd over seeds (band clipped to 0-100), one line per chosen cell."""
    colors = _colors(list(curves["label"].unique()))
    panels = list(curves.groupby(PANEL, sort=True))
    fig = _new_figure(_width(len(panels)), 0.6 + 2.4 * math.ceil(len(panels) / 3) + 0.14 * len(colors))
    _title(fig, title)
    plotted = []
    for sub, (key, panel) in zip(_panel_grid(fig, len(panels)), panels):
        ax = sub.subplots()
        sub.suptitle(f"{key[0]} / {key[1]}")
        lows, highs = [], []
        for label, line in panel.groupby("label", sort=True):
            line = line.sort_values("epoch")
            sds = line["sd"].fillna(0.0)
            line = line.assign(band_low=(line["mean"] - sds).clip(0, 100), band_high=(line["mean"] + sds).clip(0, 100))
            ax.plot(line["epoch"], line["mean"], color=colors[label], gid=f"history|{label}")
            ax.fill_between(line["epoch"], line["band_low"], line["band_high"], color=colors[label], alpha=BAND_ALPHA,
                            linewidth=0)
            lows += line["band_low"].tolist()
            highs += line["band_high"].tolist()
            plotted.append(line)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
        _y_limits(ax, lows, highs, (0.0, 100.0))
    ns = curves.groupby("label")["n"].agg(lambda s: ",".join(str(v) for v in sorted(set(s))))
    handles = [Line2D([], [], color=colors[label], label=f"{label} (n = {ns[label]})") for label in sorted(colors)]
    fig.legend(handles=handles, loc="outside lower center", ncols=1 if len(panels) <= 1 else 2, frameon=False)
    return fig, pd.concat(plotted, ignore_index=True)
