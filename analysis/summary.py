"""The answer in words: one verdict per method and strength, printed after a sweep and kept in summary.md.

A verdict is written for a reader of the paper, not of the code: which interval was chosen (on
validation), what it gained over massed and over its control, and whether that is more than seed
noise, e.g.

    Spaced EMA, decay 0.7 (s = 1, chosen on validation) beats massed by 4.29 points (95 % CI +3.54
    to +5.04, 10 paired seeds) but not its matched-horizon control (-1.23 points, 95 % CI -1.58 to
    -0.87, 10 paired seeds): here the gain comes from the longer averaging horizon. The same
    interval is best on test. The comparison cost 0.016 CPU-hours.

Every word is derived from the numbers: a 95 % interval above zero "beats", below zero "is worse
than", one that holds zero is "no detectable difference". Cells that cannot measure their interval
(analysis.measurable) are never chosen; where no cell can, the verdict says why in one sentence
instead of naming a winner. Then one line for each random-schedule or offline cell. Every number
is a column of gains.csv.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.gains import CONTROL_PREFIX, FAMILY, MASSED, POWER, TARGET_HALF_WIDTH
from analysis.labels import cell_words, comparison_words, control_matches, line_label, metric_words, signed

BETTER, WORSE, SAME, UNKNOWN = "better", "worse", "same", "unknown"


def ci_text(row: Any) -> str:
    """'95 % CI +0.21 to +1.43, 5 paired seeds', or why there is no interval."""
    if row.paired == "yes":
        seeds = f"{row.n} paired seed{'s' if row.n != 1 else ''}"
    else:
        seeds = f"{row.n} vs {row.n_reference} unpaired seeds"
    if math.isnan(row.low) or math.isnan(row.high):
        return f"no interval with {seeds}"
    welch = "" if row.paired == "yes" else ", Welch"
    return f"95 % CI {signed(row.low)} to {signed(row.high)}{welch}, {seeds}"


def relation(row: Any) -> str:
    """Which side of zero the gain's 95 % interval lies: better, worse, same (it holds 0), unknown (no interval)."""
    if math.isnan(row.low) or math.isnan(row.high):
        return UNKNOWN
    if row.low > 0:
        return BETTER
    if row.high < 0:
        return WORSE
    return SAME


def _versus(row: Any, reference: str) -> str:
    """'beats massed by 4.29 points (95 % CI ...)', and the worse / no-difference / no-interval forms."""
    how = relation(row)
    if how == BETTER:
        return f"beats {reference} by {abs(row.mean):.2f} points ({ci_text(row)})"
    if how == WORSE:
        return f"is worse than {reference} by {abs(row.mean):.2f} points ({ci_text(row)})"
    if how == SAME:
        return f"shows no detectable difference from {reference} ({signed(row.mean)} points, {ci_text(row)})"
    return f"differs from {reference} by {signed(row.mean)} points ({ci_text(row)})"


def _against_control(massed: Any, control: Any) -> str:
    """The control clause: after a gain over massed it says where the gain comes from; else a sentence of its own."""
    kind = control.comparison.removeprefix(CONTROL_PREFIX)
    words, source = comparison_words(control.comparison), control_matches(kind)
    if control.unmeasured:
        return f"; {words} cannot be compared with it ({control.unmeasured})."
    numbers = f"{signed(control.mean)} points, {ci_text(control)}"
    if relation(massed) != BETTER:
        return f". It {_versus(control, words)}."
    how = relation(control)
    if how == BETTER:
        return f" and {words} by {abs(control.mean):.2f} points ({ci_text(control)}): spacing adds more than {source}."
    if how == WORSE:
        return f" but not {words} ({numbers}): here the gain comes from {source}."
    if how == SAME:
        return f" but no more than {words} ({numbers}): {source} can account for the gain."
    return f"; over {words}: {numbers}."


def _subject(name: str, row: Any, how: str | None = None) -> str:
    """'Spaced EMA, decay 0.7 (s = 1, chosen on validation)', 'EMA, decay 0.99 on the random schedule'."""
    if math.isinf(row.interval):
        return f"{_capital(name)} offline (s = inf)"
    if row.schedule != "periodic":
        return f"{_capital(name)} on the {row.schedule} schedule"
    return f"Spaced {name} (s = {row.interval:g}{', ' + how if how else ''})"


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _judged(name: str, row: Any, rows: list[Any], how: str | None = None) -> str:
    """The sentences for one spaced cell compared with massed and with its controls."""
    controls = [r for r in rows if r.comparison != MASSED and (r.schedule, r.interval) == (row.schedule, row.interval)]
    text = f"{_subject(name, row, how)} {_versus(row, 'massed')}"
    if not controls:
        return text + "."
    return text + _against_control(row, controls[0]) + "".join(
        f" It {_versus(c, comparison_words(c.comparison))}." for c in controls[1:])


def verdicts(table: pd.DataFrame, points: pd.DataFrame) -> list[str]:
    """One line per method, strength, target and series (plus one per random / offline cell)."""
    families = _families(points)
    if families.empty:
        return []
    several_tasks = len(families[["dataset", "model"]].drop_duplicates()) > 1
    with_target = families.groupby("method")["target"].nunique().max() > 1
    lines = []
    for row in families.itertuples(index=False):
        name = line_label(row, with_target) + (f" on {row.dataset} / {row.model}" if several_tasks else "")
        family = _match(table, {k: getattr(row, k) for k in FAMILY}) if len(table) else table
        lines += _family_lines(name, family)
    return lines


def _families(points: pd.DataFrame) -> pd.DataFrame:
    """(method, strength, dataset, model, target, series) of every non-baseline ordinary cell."""
    ordinary = points[points["control_kind"].isna() & (points["method"] != "baseline")]
    return ordinary[FAMILY].drop_duplicates().sort_values(FAMILY, na_position="first").reset_index(drop=True)


def _match(table: pd.DataFrame, keys: dict[str, Any]) -> pd.DataFrame:
    for column, value in keys.items():
        missing = value is None or (isinstance(value, float) and math.isnan(value))
        table = table[table[column].isna()] if missing else table[table[column] == value]
    return table


def _family_lines(name: str, family: pd.DataFrame) -> list[str]:
    if family.empty:
        return [f"No verdict for {name} yet: it needs completed runs of the massed cell (s = 0) and of a spaced cell."]
    rows = list(family.itertuples(index=False))
    massed = [row for row in rows if row.comparison == MASSED]
    periodic = [row for row in massed if row.schedule == "periodic" and 0 < row.interval < math.inf]
    chosen = next((row for row in massed if row.best_on_val), None)
    optimistic = next((row for row in massed if row.best_on_test), None)
    lines = []
    if chosen is not None:
        text = _judged(name, chosen, rows, "chosen on validation")
        if optimistic is not None and optimistic.interval != chosen.interval:
            text += (f" On test alone s = {optimistic.interval:g} would look best ({signed(optimistic.mean)} points "
                     f"over massed, {ci_text(optimistic)}; optimistic: chosen on the test set).")
        elif optimistic is not None:
            text += " The same interval is best on test."
        lines.append(text + _left_out(periodic) + _power(chosen) + f" The comparison cost {chosen.cost}.")
    elif optimistic is not None:
        lines.append(_judged(name, optimistic, rows, "best on test") + " There is no validation accuracy to choose on "
                     "(dataset.val_fraction=0), so this choice on test is optimistic." + _left_out(periodic)
                     + f" The comparison cost {optimistic.cost}.")
    elif periodic:
        lines.append(_no_winner(f"spaced {name}", periodic))
    for row in massed:
        if row.schedule != "periodic" or math.isinf(row.interval):
            lines.append(_no_winner(_subject(name, row), [row]) if row.unmeasured else _judged(name, row, rows))
    compared = {(row.schedule, row.interval) for row in massed}
    for row in rows:
        if row.comparison != MASSED and (row.schedule, row.interval) not in compared:
            lines.append(f"{_subject(name, row)} compared with {comparison_words(row.comparison)}: "
                         f"{signed(row.mean)} points ({ci_text(row)}).")
    return lines


def _power(row: Any) -> str:
    """' With 10 paired seeds this sweep detects gains of 0.9 points or more (...); ...', from the paired sd."""
    if math.isnan(row.detectable):
        return ""
    plan = (f"a 95 % CI of ±{TARGET_HALF_WIDTH:g} point needs {int(row.seeds_needed)} paired seeds"
            if row.seeds_needed > row.n else f"{row.n} seeds already give a 95 % CI within ±{TARGET_HALF_WIDTH:g} point")
    return (f" With {row.n} paired seeds (per-seed sd {row.sd:.2f} points) this sweep detects gains of "
            f"{row.detectable:.2f} points or more (95 % confidence, {POWER * 100:.0f} % power); {plan}.")


def _reasons(rows: list[Any]) -> list[str]:
    """The distinct reasons (analysis.measurable) of these gain rows, in order."""
    found: list[str] = []
    for row in rows:
        found += [part for part in str(row.unmeasured).split("; ") if part and part not in found]
    return found


def _left_out(periodic: list[Any]) -> str:
    """' Left out of the choice: s = 2: ...' for the intervals that cannot measure spacing."""
    reasons = _reasons([row for row in periodic if row.unmeasured])
    return f" Left out of the choice: {'; '.join(reasons)}." if reasons else ""


def _no_winner(subject: str, rows: list[Any]) -> str:
    """One sentence: no winner, and why."""
    return f"No verdict for {subject}: no cell here can measure its interval; {'; '.join(_reasons(rows))}."


def markdown(roots: list[Path], metric: str, verdict_lines: list[str], cost_lines: list[str], warnings: list[str],
             left_out: list[str], captions: list[tuple[str, str]] = ()) -> str:  # type: ignore[assignment]
    """summary.md: what was analysed, how, the verdicts, the figures' captions, the cost, and what was left out."""
    lines = ["# Summary", "", f"Sweeps: {', '.join(f'`{root}`' for root in roots)}", "",
             f"Metric: {metric_words(metric)}. Gains are in accuracy points, spaced minus its reference, mean of "
             "the per-seed differences with a 95 % confidence interval (Student t, paired by seed; Welch where "
             "seeds do not pair). The interval is chosen on validation accuracy, never among cells that cannot measure "
             "their interval (gains.csv `unmeasured`); the interval best on test is optimistic and labelled so. "
             "Every number is a row of gains.csv.", "", "## Verdict", ""]
    lines += [f"- {line}" for line in verdict_lines] or ["- nothing to compare yet"]
    if captions:
        lines += ["", "## Figures", "", *(f"- `{name}`: {text}" for name, text in captions)]
    lines += ["", "## Cost", "", *(f"- {line}" for line in cost_lines)]
    if warnings:
        lines += ["", "## Warnings", "", *(f"- {line.removeprefix('warning: ')}" for line in warnings)]
    lines += ["", "## Left out of every mean", "", *(f"- {line.strip()}" for line in left_out)]
    return "\n".join(lines) + "\n"
