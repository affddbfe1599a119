"""One analysis of one or more sweeps: load the records once, then write any of the outputs.

``Analysis`` holds the frames every output is a function of; ``draw`` turns it into files by
kind (interval, gain, heatmap, history, table). The full report (``analyze``) and the catalogue's
single figures both go through ``draw``, so the two can never draw the same thing differently.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from analysis import completeness, cost, figures, summary, tables
from analysis.errors import AnalysisError
from analysis.gains import gains, hardware_warnings
from analysis.integrity import vet
from analysis.labels import METRICS, cell_words, line_label, metric_words
from analysis.records import RecordSet, load_records, read_history
from analysis.tidy import POINT, aggregate, select, tidy_frame
from spacing.contract import COMPLETED, HISTORY_FILE

KINDS = ("interval", "gain", "heatmap", "history", "table")
#: What the full report writes, by kind, under ``--out``.
REPORT_STEMS = {"interval": "interval_curve", "gain": "gain_curve", "heatmap": "heatmap", "history": "history",
                "table": "comparison"}
Spec = dict[str, Any]


@dataclass(frozen=True)
class Analysis:
    """The loaded sweep(s) under one metric and target choice.

    ``tidy``: one row per (run, target); ``runs``: one row per run, the analysed target;
    ``points``: mean / sd / n in percent per cell and target over usable runs;
    ``gains`` / ``pairs``: gains over massed and controls with their intervals, and the per-seed
    differences behind them (analysis.gains); ``incomplete``: everything left out and why.
    """

    metric: str
    target: str | None
    records: RecordSet
    tidy: pd.DataFrame
    runs: pd.DataFrame
    points: pd.DataFrame
    gains: pd.DataFrame
    pairs: pd.DataFrame
    incomplete: pd.DataFrame

    def only(self, methods: tuple[str, ...]) -> Analysis:
        """The same analysis restricted to some methods (unreadable files stay listed)."""
        def keep(frame: pd.DataFrame) -> pd.DataFrame:
            return frame[frame["method"].isin(methods) | frame["method"].isna()].reset_index(drop=True)

        return replace(self, tidy=keep(self.tidy), runs=keep(self.runs), points=keep(self.points),
                       gains=keep(self.gains), pairs=keep(self.pairs), incomplete=keep(self.incomplete))

    def frames_for(self, targets: tuple[str, ...] | None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        """Points, gains and pairs for these targets of every run (None: the analysed target)."""
        if targets is None:
            return self.points, self.gains, self.pairs
        rows = self.tidy[self.tidy["target"].isin(targets)]
        return (aggregate(rows, self.metric), *gains(rows, self.metric))

    def warnings(self) -> list[str]:
        """Comparisons whose runs ran on different devices or thread counts."""
        return hardware_warnings(self.gains)


def load(roots: list[Path], metric: str = "final", target: str | None = None) -> Analysis:
    """Read every record under ``roots`` and build the frames; AnalysisError if nothing usable."""
    if metric not in METRICS:
        raise AnalysisError(f"unknown metric '{metric}'; use one of: {', '.join(METRICS)}")
    record_set = load_records(roots)
    if not record_set.records:
        where = ", ".join(str(root) for root in roots)
        if record_set.problems:
            first = record_set.problems[0]
            raise AnalysisError(f"none of the {len(record_set.problems)} result.json files under {where} could be "
                                f"read (first: {first.path}: {first.reason}); fix or remove them and run again")
        raise AnalysisError(f"no result.json found under {where}; pass the sweep directory Hydra printed at the "
                            "end of `python run.py -m ...` (it holds one sub-directory per run)")
    vet(record_set.records)
    tidy = tidy_frame(record_set.records)
    if target is not None and not tidy["target"].eq(target).any():
        raise AnalysisError(f"no run evaluated target '{target}'; use one of: "
                            f"{', '.join(sorted(tidy['target'].unique()))} (or drop --target)")
    runs = select(tidy, target)
    return Analysis(metric, target, record_set, tidy, runs, aggregate(runs, metric), *gains(runs, metric),
                    completeness.incomplete(runs, record_set, metric))


def write_data(analysis: Analysis, out: Path) -> list[Path]:
    """The frames behind everything: tidy (CSV, and Parquet when pyarrow is installed), points, gains, incomplete."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "tidy.csv", out / "points.csv", out / "gains.csv", out / "incomplete.csv"]
    analysis.tidy.to_csv(paths[0], index=False)
    analysis.points.to_csv(paths[1], index=False)
    analysis.gains.to_csv(paths[2], index=False)
    analysis.incomplete.to_csv(paths[3], index=False)
    try:
        analysis.tidy.to_parquet(out / "tidy.parquet", index=False)
        paths.append(out / "tidy.parquet")
    except ImportError:
        pass  # pyarrow is optional: the CSV holds the same table
    return paths


def draw(kind: str, analysis: Analysis, stem: Path, targets: tuple[str, ...] | None = None,
         cells: list[Spec] | None = None) -> list[Path]:
    """Write one output of ``kind`` to ``stem``.*; return the paths ([] if there is nothing to draw).

    ``targets``: the evaluation targets whose lines the interval figure and heatmaps show
    (default the analysed one); ``cells``: the cells of the history figure (default the massed,
    best spaced and baseline cells of the comparison table).
    """
    points, gain_table, pairs = analysis.frames_for(targets)
    if points.empty:
        return []
    text = caption(kind, analysis.metric, cells)
    if kind == "interval":
        return figures.save(*figures.interval_figure(points, analysis.metric), stem, text)
    if kind == "gain":
        drawn = None if gain_table.empty else figures.gain_figure(gain_table, pairs, analysis.metric)
        return [] if drawn is None else figures.save(*drawn, stem, text)
    if kind == "heatmap":
        drawn = figures.heatmap_figure(points, gain_table, analysis.metric)
        return [] if drawn is None else figures.save(*drawn, stem, text)
    if kind == "history":
        curves = history_curves(analysis, cells if cells is not None else default_cells(points, gain_table))
        title = "Test accuracy vs epoch" + ("" if cells is not None else ": massed and the chosen interval")
        return [] if curves.empty else figures.save(*figures.history_figure(curves, title), stem, text)
    if kind == "table":
        table = tables.comparison(points, gain_table)
        return [] if table.empty else tables.write_tables(table, analysis.metric, stem)
    raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")


def caption(kind: str, metric: str, cells: list[Spec] | None = None) -> str:
    """The long caption of an output kind (the image itself carries a short title)."""
    if kind == "history":
        return figures.caption("the cells given with --cell" if cells is not None
                               else "massed and the interval chosen on validation, and baselines", metric)
    if kind == "table":
        return tables.caption(metric)
    return figures.caption(kind, metric)


def default_cells(points: pd.DataFrame, gain_table: pd.DataFrame) -> list[Spec]:
    """The cells worth a learning curve: each comparison row's massed cell and the interval chosen on
    validation (best on test where there is no validation), and baselines."""
    table = tables.comparison(points, gain_table)
    specs = []
    for row in table.to_dict("records"):
        common = {k: row[k] for k in tables.ROW_KEYS} | {"schedule": "periodic", "control_kind": None}
        specs.append(common | {"interval": 0.0})
        chosen = row["val_interval"] if not math.isnan(row["val_interval"]) else row["test_interval"]
        if not math.isnan(chosen):
            specs.append(common | {"interval": chosen})
    specs += [{"method": "baseline"}] if (points["method"] == "baseline").any() else []
    return specs


def parse_cell(text: str) -> Spec:
    """``method=ema,interval=0.5,strength=0.999`` -> a spec; numbers where the column is numeric."""
    spec: Spec = {}
    for part in filter(None, text.split(",")):
        key, sep, value = part.partition("=")
        if not sep or key not in (*POINT, "seed"):
            raise AnalysisError(f"cannot read cell '{text}'; write KEY=VALUE pairs separated by commas with KEY "
                                f"one of {', '.join((*POINT, 'seed'))}, e.g. method=ema,interval=0.5")
        try:
            spec[key] = float(value) if key in ("interval", "strength", "seed") else value
        except ValueError:
            raise AnalysisError(f"'{key}' needs a number in cell '{text}', e.g. {key}=0.5") from None
    return spec


def _matches(frame: pd.DataFrame, spec: Spec) -> pd.Series:
    """Rows of ``frame`` equal to ``spec`` on every key it names (NaN matches NaN or None)."""
    mask = pd.Series(True, index=frame.index)
    for key, value in spec.items():
        missing = value is None or (isinstance(value, float) and math.isnan(value))
        mask &= frame[key].isna() if missing else frame[key].eq(value)
    return mask


def history_curves(analysis: Analysis, cells: list[Spec]) -> pd.DataFrame:
    """Mean / sd / n of test accuracy (%) per epoch over the usable runs of the chosen cells.

    Epochs beyond the record's ``epochs_completed`` are ignored: the record is authoritative.
    """
    runs = analysis.runs[analysis.runs["status"].eq(COMPLETED) & analysis.runs["problem"].isna()]
    chosen = runs[pd.concat([_matches(runs, spec) for spec in cells], axis=1).any(axis=1)] if cells else runs[:0]
    frames = []
    for run in chosen.to_dict("records"):
        try:
            history = read_history(run["path"])
        except (OSError, ValueError) as exc:
            print(f"warning: skipped {Path(run['path']) / HISTORY_FILE}: {exc}", file=sys.stderr)
            continue
        # result.json is authoritative: a kill between the two writes can leave history.csv an epoch ahead
        history = history[(history["target"] == run["target"]) & (history["epoch"] <= run["epochs_completed"])]
        frames.append(history[["epoch", "test_acc"]].assign(**{k: run[k] for k in POINT}))
    if not frames:
        return pd.DataFrame(columns=[*POINT, "label", "epoch", "mean", "sd", "n"])
    long = pd.concat(frames, ignore_index=True).assign(test_acc=lambda f: 100.0 * f["test_acc"])
    grouped = long.groupby([*POINT, "epoch"], dropna=False, sort=True)["test_acc"]
    curves = grouped.agg(["mean", "std", "count"]).rename(columns={"std": "sd", "count": "n"}).reset_index()
    curves["label"] = [_cell_label(row) for row in curves.itertuples()]
    return curves[[*POINT, "label", "epoch", "mean", "sd", "n"]]


def _cell_label(row: Any) -> str:
    if row.method == "baseline":
        return line_label(row)
    return f"{line_label(row)}, {cell_words(row.schedule, row.interval)}"


@dataclass(frozen=True)
class Report:
    """What ``analyze`` wrote, what it left out, and what it concluded."""

    analysis: Analysis
    paths: list[Path]
    verdicts: list[str]
    costs: list[str]

    def lines(self) -> list[str]:
        """The console report: what was left out, warnings, cost, files written, then the verdicts last."""
        lines = [*completeness.summary(self.analysis.incomplete), *self.analysis.warnings(), *self.costs,
                 *(f"wrote {path}" for path in self.paths)]
        if self.analysis.points.empty:
            key = METRICS[self.analysis.metric].key
            lines.append(f"nothing to plot yet: no completed run has {key} (--metric {self.analysis.metric})")
        if self.verdicts:
            lines += [f"verdict ({metric_words(self.analysis.metric)}; 95 % CI over seeds; interval chosen on "
                      "validation):", *(f"  {line}" for line in self.verdicts)]
        return lines


def analyze(roots: list[Path], out: Path, metric: str = "final", target: str | None = None,
            cells: list[Spec] | None = None) -> Report:
    """The full report of ``python -m analysis``: data tables, every figure kind, the table and summary.md."""
    analysis = load(roots, metric, target)
    paths = write_data(analysis, out)
    for kind in KINDS:
        paths += draw(kind, analysis, out / REPORT_STEMS[kind], cells=cells)
    verdicts = summary.verdicts(analysis.gains, analysis.points)
    costs = cost.sweep_lines(analysis.runs)
    drawn = {kind: out / f"{REPORT_STEMS[kind]}.png" for kind in KINDS if kind != "table"}
    captions = [(path.name, caption(kind, metric, cells)) for kind, path in drawn.items() if path in paths]
    text = summary.markdown(roots, metric, verdicts, costs, analysis.warnings(),
                            completeness.summary(analysis.incomplete, limit=len(analysis.incomplete)), captions)
    (out / "summary.md").write_text(text)
    paths.append(out / "summary.md")
    return Report(analysis, paths, verdicts, costs)
