"""The comparison table: baseline, massed (s = 0) and best spaced interval, per method and strength.

This is the papers' headline claim in table form ("spaced beats massed by g points at s*"), so
the rules are spelled out once: *massed* is the periodic s = 0 cell; *best spaced* is the periodic
cell with 0 < s < inf and the highest mean (ties go to the smaller interval); *baseline* is the
``baseline`` method's cell on the same dataset and model (the one with most seeds); the gain is
best spaced minus massed, in accuracy points. Random-schedule and offline cells are in the
interval figure, not here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.tidy import interval_label, metric_caption

ROW_KEYS = ["method", "strength_name", "strength", "dataset", "model", "target"]
PARTS = ("baseline", "massed", "spaced")
COLUMNS = [*ROW_KEYS, *(f"{p}_{s}" for p in PARTS for s in ("mean", "sd", "n")), "best_interval", "gain_pts", "metric"]
HEADER = ["method", "strength", "dataset", "model", "target", "baseline", "massed (s = 0)",
          "best spaced", "best s", "gain vs massed (points)"]


def comparison(points: pd.DataFrame) -> pd.DataFrame:
    """One row per (method, strength, dataset, model, target) that has a massed or spaced cell."""
    metric = points["metric"].iloc[0] if len(points) else ""
    periodic = points[(points["schedule"] == "periodic") & (points["method"] != "baseline")]
    baselines = points[points["method"] == "baseline"].sort_values("n", ascending=False)
    rows = []
    for key, group in periodic.groupby(ROW_KEYS, dropna=False, sort=True):
        massed = group[group["interval"] == 0]
        spaced = group[(group["interval"] > 0) & (group["interval"] < math.inf)]
        best = spaced.sort_values(["mean", "interval"], ascending=[False, True]).head(1)
        row = dict(zip(ROW_KEYS, key))
        baseline = baselines[(baselines["dataset"] == row["dataset"]) & (baselines["model"] == row["model"])].head(1)
        for part, cell in zip(PARTS, (baseline, massed.head(1), best)):
            row |= _summary(part, cell)
        row["best_interval"] = best["interval"].iloc[0] if len(best) else math.nan
        row["gain_pts"] = row["spaced_mean"] - row["massed_mean"]
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS[:-1]).assign(metric=metric)[COLUMNS]


def _summary(part: str, cell: pd.DataFrame) -> dict[str, Any]:
    if cell.empty:
        return {f"{part}_mean": math.nan, f"{part}_sd": math.nan, f"{part}_n": 0}
    first = cell.iloc[0]
    return {f"{part}_mean": first["mean"], f"{part}_sd": first["sd"], f"{part}_n": int(first["n"])}


def caption(metric: str) -> str:
    """The table's caption: the metric, the summary statistics and the gain's definition."""
    return (f"Baseline, massed and best spaced interval: test accuracy (%), {metric_caption(metric)}; mean ± sd over n seeds; "
            f"gain = best spaced − massed, in points.")


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
        strength = "–" if pd.isna(row["strength"]) else f"{row['strength_name']}={row['strength']:g}"
        best = "–" if pd.isna(row["best_interval"]) else interval_label(row["best_interval"])
        gain = "–" if pd.isna(row["gain_pts"]) else f"{row['gain_pts']:+.2f}"
        texts = [row["method"], strength, row["dataset"], row["model"], row["target"],
                 stat(row, "baseline"), stat(row, "massed"), stat(row, "spaced"), best, gain]
        rows.append([escape(str(text)) for text in texts])
    return rows


def to_markdown(table: pd.DataFrame, metric: str) -> str:
    """A GitHub-flavoured Markdown table preceded by its caption."""
    lines = [f"**Table.** {caption(metric)}", "", "| " + " | ".join(HEADER) + " |",
             "|" + "|".join("---:" if i >= 5 else "---" for i in range(len(HEADER))) + "|"]
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
        r"\begin{tabular}{lllll" + "r" * (len(HEADER) - 5) + "}", r"\toprule",
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
