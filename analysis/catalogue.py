"""The figure catalogue: each paper figure or table by name, the sweep that feeds it, what it plots.

``python -m analysis --list`` prints it; ``python -m analysis figure NAME SWEEP_DIR`` draws one
entry through the same ``report.draw`` the full report uses, restricted to the entry's methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from analysis.errors import AnalysisError
from analysis.report import Analysis, Spec, draw


@dataclass(frozen=True)
class Entry:
    """One reproducible figure or table.

    ``methods``: the runs it reads (a comparison table also reads ``baseline`` runs);
    ``targets``: the evaluation targets drawn, None for each method's main target.
    """

    name: str
    sweeps: tuple[str, ...]
    kind: str
    methods: tuple[str, ...]
    what: str
    targets: tuple[str, ...] | None = None


CATALOGUE: tuple[Entry, ...] = (
    Entry("fig_demo_interval", ("demo",), "interval", ("ema",),
          "EMA on noisy digits (CPU, minutes): accuracy of the EMA and of the raw model vs interval, controls beside, massed dashed",
          ("ema", "model")),
    Entry("fig_dropout_interval", ("dropout_grid",), "interval", ("dropout",),
          "spaced dropout: accuracy vs interval, one line per rate p (inverted U), massed dashed"),
    Entry("fig_demo_gain", ("demo",), "gain", ("ema",),
          "EMA on noisy digits: gain of each interval over massed and over its matched-horizon control, 95 % CI, per-seed differences"),
    Entry("fig_dropout_gain", ("dropout_grid",), "gain", ("dropout",),
          "spaced dropout: gain over massed vs interval per rate p, 95 % CI, per-seed differences"),
    Entry("fig_dropout_heatmap", ("dropout_grid",), "heatmap", ("dropout",),
          "spaced dropout: p x interval heatmaps of mean accuracy and of the gain over massed"),
    Entry("fig_ema_interval", ("ema_grid",), "interval", ("ema",),
          "spaced EMA: accuracy of the EMA weights vs interval, one line per decay, massed dashed"),
    Entry("fig_ema_gain", ("ema_grid",), "gain", ("ema",),
          "spaced EMA: gain over massed vs interval per decay, 95 % CI, per-seed differences"),
    Entry("fig_ema_heatmap", ("ema_grid",), "heatmap", ("ema",),
          "spaced EMA: decay x interval heatmaps of mean accuracy and of the gain over massed"),
    Entry("fig_online_kd_interval", ("online_kd_curve",), "interval", ("online_kd",),
          "spaced online KD: student (and teacher) accuracy vs interval; massed s = 0 dashed, "
          "random schedule and offline KD (s = inf) as separate markers", ("student", "teacher")),
    Entry("fig_online_kd_gain", ("online_kd_curve",), "gain", ("online_kd",),
          "spaced online KD: student gain over online KD (s = 0) vs interval, random schedule and offline KD beside"),
    Entry("fig_online_kd_history", ("online_kd_curve",), "history", ("online_kd",),
          "spaced online KD: student test accuracy vs epoch, massed vs best spaced interval"),
    Entry("fig_self_kd_interval", ("self_kd_curve",), "interval", ("self_kd",),
          "spaced self KD: ensemble accuracy vs interval, massed s = 0 dashed"),
    Entry("fig_self_kd_gain", ("self_kd_curve",), "gain", ("self_kd",),
          "spaced self KD: ensemble gain over massed vs interval, 95 % CI, per-seed differences"),
    Entry("table_kd_comparison", ("online_kd_curve", "self_kd_curve"), "table", ("online_kd", "self_kd", "baseline"),
          "online and self KD: baseline, massed, interval chosen on validation with its gain and 95 % CI, cost"),
    Entry("table_dropout_ema_comparison", ("dropout_grid", "ema_grid"), "table", ("dropout", "ema", "baseline"),
          "dropout and EMA: baseline, massed, interval chosen on validation per strength, gain and 95 % CI, cost"),
)
BY_NAME = {entry.name: entry for entry in CATALOGUE}


def listing() -> str:
    """The catalogue as the text ``--list`` prints: name, kind, feeding sweep(s), description."""
    width = max(len(entry.name) for entry in CATALOGUE)
    lines = [f"{'name':<{width}}  {'kind':<8}  sweep(s) -> what it plots", ""]
    for entry in CATALOGUE:
        lines.append(f"{entry.name:<{width}}  {entry.kind:<8}  {', '.join(entry.sweeps)} -> {entry.what}")
    lines += ["", "draw one: python -m analysis figure NAME SWEEP_DIR [SWEEP_DIR ...] [--metric final|best_val|best_test]",
              "feed it:  python run.py -m +sweep=SWEEP"]
    return "\n".join(lines)


def entry(name: str) -> Entry:
    """The catalogue entry called ``name``; AnalysisError naming --list otherwise."""
    if name not in BY_NAME:
        raise AnalysisError(f"unknown figure '{name}'; run `python -m analysis --list` to see the names")
    return BY_NAME[name]


def draw_entry(item: Entry, analysis: Analysis, out: Path, cells: list[Spec] | None = None) -> tuple[list[Path], list[str]]:
    """Draw one entry into ``out``/NAME.*; return the paths and warnings about the records used.

    A record set from another sweep is drawn anyway (the methods decide), with a warning.
    """
    subset = analysis.only(item.methods)
    if subset.runs.empty:
        raise AnalysisError(f"{item.name} needs {' or '.join(item.methods)} runs and these records have none; "
                            f"produce them with `python run.py -m +sweep={item.sweeps[0]}`")
    sweeps = set(subset.runs["sweep"].dropna())
    warnings = [f"warning: {item.name} is fed by sweep {' / '.join(item.sweeps)}, these records come from "
                f"{', '.join(sorted(sweeps))}"] if sweeps - set(item.sweeps) else []
    paths = draw(item.kind, subset, out / item.name, targets=item.targets, cells=cells)
    if not paths:
        raise AnalysisError(f"{item.name} has nothing to draw from these records (a {item.kind} needs "
                            f"{_NEEDS[item.kind]}); run `python run.py -m +sweep={item.sweeps[0]}` to completion")
    return paths, warnings


_NEEDS = {
    "interval": "completed runs",
    "gain": "completed runs of a massed (s = 0) and a spaced cell",
    "heatmap": "at least two strengths and two periodic intervals",
    "history": "completed runs with history.csv in the chosen cells",
    "table": "completed massed or spaced runs",
}
