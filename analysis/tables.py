"""The comparison table: baseline, massed (s = 0), the interval chosen on validation and its gain.

This is the papers' headline claim in table form ("spaced beats massed by g points at s*"), with
the rules spelled out once: *massed* is the periodic s = 0 cell; the *best interval* is chosen
among periodic cells with 0 < s < inf on mean validation accuracy (analysis.gains), and the gain
reported is the paired test gain at that interval with its 95 % interval; the interval that is
best on test is shown beside it as the optimistic choice; *its control* is the massed run matched
to the chosen cell (EMA: the same averaging horizon; dropout: the same mean rate), where one ran,
with the chosen cell's paired gain over it: the column that says whether the gain is the spacing;
*baseline* is the ``baseline`` method's cell on the same dataset and model (the one with most
seeds); the cost is what the chosen cell and the massed cell cost together. Random-schedule and
offline cells are in gains.csv and the figures, not here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.gains import CONTROL_PREFIX, MASSED
from analysis.labels import control_words, interval_label, method_words, metric_words, signed, target_words

ROW_KEYS = ["method", "strength_name", "strength", "dataset", "model", "target", "series"]
COLUMNS = [*ROW_KEYS, *(f"{p}_{s}" for p in ("baseline", "massed") for s in ("mean", "sd", "n")),
           "val_interval", "val_mean", "val_sd", "val_n", "val_gain", "val_low", "val_high", "val_gain_n", "val_paired",
           "control_kind", "control_mean", "control_sd", "control_n", "control_gain", "control_low", "control_high",
           "control_gain_n", "control_paired",
           "test_interval", "test_gain", "test_low", "test_high", "cost_hours", "cost", "metric"]
HEADER = ["method", "strength", "dataset / model", "target", "baseline", "massed (s = 0)", "best s on val",
          "test at that s", "gain over massed [95 % CI]", "its control", "gain over its control [95 % CI]",
          "best s on test (optimistic)", "its gain", "cost"]
NUMERIC_FROM = 4  # columns from here on are right-aligned numbers


def comparison(points: pd.DataFrame, gains: pd.DataFrame) -> pd.DataFrame:
    """One row per (method, strength, dataset, model, target, series) that has a massed or spaced cell."""
    metric = points["metric"].iloc[0] if len(points) else ""
    ordinary = points[points["control_kind"].isna()]
    periodic = ordinary[(ordinary["schedule"] == "periodic") & (ordinary["method"] != "baseline")]
    baselines = ordinary[ordinary["method"] == "baseline"].sort_values("n", ascending=False, kind="stable")
    massed_gains = gains[(gains["comparison"] == MASSED)] if len(gains) else gains
    rows = []
    for key, group in periodic.groupby(ROW_KEYS, dropna=False, sort=True):
        row: dict[str, Any] = dict(zip(ROW_KEYS, key))
        baseline = baselines[(baselines["dataset"] == row["dataset"]) & (baselines["model"] == row["model"])]
        row |= _summary("baseline", baseline.head(1)) | _summary("massed", group[group["interval"] == 0].head(1))
        family = _rows_of(massed_gains, dict(zip(ROW_KEYS, key)))
        chosen = family[family["best_on_val"].astype(bool)] if len(family) else family
        optimistic = family[family["best_on_test"].astype(bool)] if len(family) else family
        row |= _chosen(chosen, group) | _optimistic(optimistic)
        row |= _control(gains, points, row)
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS[:-1]).assign(metric=metric)[COLUMNS]


def _rows_of(table: pd.DataFrame, keys: dict[str, Any]) -> pd.DataFrame:
    for column, value in keys.items():
        missing = value is None or (isinstance(value, float) and math.isnan(value))
        table = table[table[column].isna()] if missing else table[table[column] == value]
    return table


def _summary(part: str, cell: pd.DataFrame) -> dict[str, Any]:
    if cell.empty:
        return {f"{part}_mean": math.nan, f"{part}_sd": math.nan, f"{part}_n": 0}
    first = cell.iloc[0]
    return {f"{part}_mean": first["mean"], f"{part}_sd": first["sd"], f"{part}_n": int(first["n"])}


def _chosen(chosen: pd.DataFrame, group: pd.DataFrame) -> dict[str, Any]:
    empty = {"val_interval": math.nan, "val_mean": math.nan, "val_sd": math.nan, "val_n": 0, "val_gain": math.nan,
             "val_low": math.nan, "val_high": math.nan, "val_gain_n": 0, "val_paired": "", "cost_hours": math.nan,
             "cost": ""}
    if chosen.empty:
        return empty
    gain = chosen.iloc[0]
    cell = group[(group["interval"] == gain["interval"])].iloc[0]
    return {"val_interval": gain["interval"], "val_mean": cell["mean"], "val_sd": cell["sd"], "val_n": int(cell["n"]),
            "val_gain": gain["mean"], "val_low": gain["low"], "val_high": gain["high"], "val_gain_n": int(gain["n"]),
            "val_paired": gain["paired"], "cost_hours": gain["cost_hours"], "cost": gain["cost"]}


def _control(gains: pd.DataFrame, points: pd.DataFrame, row: dict[str, Any]) -> dict[str, Any]:
    """The chosen cell's control: its mean, sd and n, and the chosen cell's paired gain over it."""
    found: dict[str, Any] = {"control_kind": "", "control_mean": math.nan, "control_sd": math.nan, "control_n": 0,
                             "control_gain": math.nan, "control_low": math.nan, "control_high": math.nan,
                             "control_gain_n": 0, "control_paired": ""}
    if pd.isna(row["val_interval"]) or gains.empty:
        return found
    keys = {k: row[k] for k in ROW_KEYS}
    over = _rows_of(gains, keys)
    over = over[over["comparison"].str.startswith(CONTROL_PREFIX) & (over["schedule"] == "periodic")
                & (over["interval"] == row["val_interval"])]
    if over.empty:
        return found
    gain = over.iloc[0]
    kind = gain["comparison"].removeprefix(CONTROL_PREFIX)
    cell = _rows_of(points, {k: v for k, v in keys.items() if k != "strength"})
    cell = cell[(cell["control_kind"] == kind) & (cell["control_interval"] == row["val_interval"])
                & (cell["control_schedule"] == "periodic") & (cell["control_strength"] == row["strength"])]
    found |= {"control_kind": kind, "control_gain": gain["mean"], "control_low": gain["low"],
              "control_high": gain["high"], "control_gain_n": int(gain["n"]), "control_paired": gain["paired"]}
    return found | (_summary("control", cell.head(1)) if len(cell) else {})


def _optimistic(optimistic: pd.DataFrame) -> dict[str, Any]:
    if optimistic.empty:
        return {"test_interval": math.nan, "test_gain": math.nan, "test_low": math.nan, "test_high": math.nan}
    gain = optimistic.iloc[0]
    return {"test_interval": gain["interval"], "test_gain": gain["mean"], "test_low": gain["low"], "test_high": gain["high"]}


def caption(metric: str) -> str:
    """The table's caption: the metric, the statistics, how the interval is chosen, what the gain is."""
    return (f"Baseline, massed and the spacing interval chosen on validation accuracy: {metric_words(metric)}, "
            "mean ± sd over n seeds; gain = chosen interval − massed in points, mean of the per-seed differences "
            "with its 95 % confidence interval (paired t; Welch where seeds do not pair); its control = the massed "
            "run matched to the chosen cell (EMA: the same averaging horizon; dropout: the same mean rate), with "
            "the chosen cell's gain over it; the interval best on test is optimistic (chosen on the test set); "
            "cost = device-hours of the chosen and the massed cell.")


def _ci(gain: float, low: float, high: float, n: int | None = None, paired: str = "yes") -> str:
    """'+0.82 [+0.21, +1.43] (n=5)'; ', Welch' when unpaired; '–' without a gain."""
    if pd.isna(gain):
        return "–"
    interval = f" [{signed(low)}, {signed(high)}]" if not (pd.isna(low) or pd.isna(high)) else ""
    how = "" if paired == "yes" else ", Welch"
    return f"{signed(gain)}{interval}" + ("" if n is None else f" (n={n}{how})")


def _cells(table: pd.DataFrame, escape: Callable[[str], str]) -> list[list[str]]:
    """The table's text cells, shared by the Markdown and LaTeX writers (they differ in escaping)."""
    def stat(row: pd.Series, part: str) -> str:
        n = int(row[f"{part}_n"])
        if n == 0:
            return "–"
        sd = row[f"{part}_sd"]
        spread = "" if pd.isna(sd) else f" ± {sd:.2f}"
        return f"{row[f'{part}_mean']:.2f}{spread} (n={n})"

    rows = []
    for _, row in table.iterrows():
        strength = "–" if pd.isna(row["strength"]) else f"{row['strength_name']} {row['strength']:g}"
        method = method_words(row["method"]) + (f" ({row['series']})" if row["series"] else "")
        chosen = "–" if pd.isna(row["val_interval"]) else interval_label(row["val_interval"])
        optimistic = "–" if pd.isna(row["test_interval"]) else interval_label(row["test_interval"])
        cost = row["cost"] or "–"
        texts = [method, strength, f"{row['dataset']} / {row['model']}", target_words(row["target"]),
                 stat(row, "baseline"), stat(row, "massed"), chosen, stat(row, "val"),
                 _ci(row["val_gain"], row["val_low"], row["val_high"], int(row["val_gain_n"]), row["val_paired"]),
                 _control_text(row, stat),
                 _ci(row["control_gain"], row["control_low"], row["control_high"], int(row["control_gain_n"]),
                     row["control_paired"]),
                 optimistic, _ci(row["test_gain"], row["test_low"], row["test_high"]), cost]
        rows.append([escape(str(text)) for text in texts])
    return rows


def _control_text(row: pd.Series, stat: Callable[[pd.Series, str], str]) -> str:
    """'94.35 ± 0.41 (n=10), matched-horizon control', or '–' where none ran."""
    if not row["control_kind"] or pd.isna(row["control_kind"]):
        return "–"
    return f"{stat(row, 'control')}, {control_words(row['control_kind'])}"


def to_markdown(table: pd.DataFrame, metric: str) -> str:
    """A GitHub-flavoured Markdown table preceded by its caption."""
    lines = [f"**Table.** {caption(metric)}", "", "| " + " | ".join(HEADER) + " |",
             "|" + "|".join("---:" if i >= NUMERIC_FROM else "---" for i in range(len(HEADER))) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in _cells(table, lambda s: s.replace("|", "\\|"))]
    return "\n".join(lines) + "\n"


def _latex_escape(text: str) -> str:
    for char, escaped in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#")):
        text = text.replace(char, escaped)
    return text.replace("±", r"$\pm$").replace("–", "--").replace("−", "--")


def to_latex(table: pd.DataFrame, metric: str) -> str:
    """A booktabs ``table`` environment with the caption; needs ``\\usepackage{booktabs}``."""
    body = [" & ".join(cells) + r" \\" for cells in _cells(table, _latex_escape)]
    return "\n".join([
        r"\begin{table}[t]", r"\centering", rf"\caption{{{_latex_escape(caption(metric))}}}",
        r"\begin{tabular}{" + "l" * NUMERIC_FROM + "r" * (len(HEADER) - NUMERIC_FROM) + "}", r"\toprule",
        " & ".join(_latex_escape(h) for h in HEADER) + r" \\", r"\midrule", *body,
        r"\bottomrule", r"\end{tabular}", r"\end{table}", "",
    ])


def write_tables(table: pd.DataFrame, metric: str, stem: Path) -> list[Path]:
    """Write ``stem``.md, .tex and .csv (the CSV holds the unrounded numbers)."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    md, tex, csv = (Path(f"{stem}.{ext}") for ext in ("md", "tex", "csv"))
    md.write_text(to_markdown(table, metric))
    tex.write_text(to_latex(table, metric))
    table.to_csv(csv, index=False)
    return [md, tex, csv]
