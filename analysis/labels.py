"""The words a reader sees: metric names, line labels, interval ticks, comparisons, costs.

Figures, tables and the summary name things the way a paper would ("EMA, decay 0.99", "test
accuracy (%) at the final epoch"), never by internal keys ("[ema]", "metric final"). All of that
wording lives here, so the same thing is called the same everywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any



@dataclass(frozen=True)
class Metric:
    """A ``--metric`` choice.

    ``key``: the result.json key it reads; ``val_key``: the validation accuracy that selects an
    interval for it (the validation analogue of ``key``); ``words``: how axes and captions say it.
    """

    key: str
    val_key: str
    words: str


METRICS: dict[str, Metric] = {
    "final": Metric("test_acc", "val_acc", "test accuracy (%) at the final epoch"),
    "best_val": Metric("test_acc_at_best_val", "best_val_acc", "test accuracy (%) at the best-validation epoch"),
    "best_test": Metric("best_test_acc", "best_val_acc",
                        "best test accuracy (%) over epochs (chosen on test: optimistic, as the papers report)"),
}

METHOD_WORDS = {"baseline": "baseline", "dropout": "dropout", "ema": "EMA", "online_kd": "online KD",
                "self_kd": "self KD"}
TARGET_WORDS = {"model": "model", "ema": "EMA weights", "student": "student", "teacher": "teacher",
                "ensemble": "ensemble of exits"}
STRENGTH_WORDS = {"cutout_size": "cutout size"}
COMPARISON_WORDS = {"massed": "massed"}


METRIC_SHORT = {"final": "final epoch", "best_val": "best-validation epoch", "best_test": "best epoch on test, optimistic"}


def metric_short(metric: str) -> str:
    """What a figure's short title says of the metric: 'final epoch'."""
    return METRIC_SHORT[metric]


def metric_words(metric: str) -> str:
    """The axis label and caption phrase of a metric, e.g. 'test accuracy (%) at the final epoch'."""
    return METRICS[metric].words


def method_words(method: str) -> str:
    return METHOD_WORDS.get(method, method.replace("_", " "))


def target_words(target: str) -> str:
    """'EMA weights', 'student', 'exit 2', ...: what was evaluated."""
    if target.startswith("exit") and target[4:].isdigit():
        return f"exit {target[4:]}"
    return TARGET_WORDS.get(target, target)


def strength_words(strength_name: Any, strength: Any) -> str:
    """'decay 0.99', 'p 0.3', '' when the method has no strength."""
    if strength is None or (isinstance(strength, float) and math.isnan(strength)):
        return ""
    return f"{STRENGTH_WORDS.get(strength_name, str(strength_name).replace('_', ' '))} {strength:g}"


def line_label(row: Any, with_target: bool = False) -> str:
    """A (method, strength, target, series) line: 'EMA, decay 0.99', 'EMA, decay 0.99: model, trainer.epochs=4'."""
    text = ", ".join(part for part in (method_words(row.method), strength_words(row.strength_name, row.strength)) if part)
    if with_target:
        text += f": {target_words(row.target)}"
    series = getattr(row, "series", "")
    if isinstance(series, str) and series:
        text += f" ({series})"
    return text


def interval_label(interval: float) -> str:
    """Tick / table text for an interval: '0' is massed, inf is offline KD."""
    return "offline" if math.isinf(interval) else f"{interval:g}"


def cell_words(schedule: str, interval: float) -> str:
    """Where a spaced cell sits: 's = 0.5', 'random schedule', 'offline (s = inf)'."""
    if math.isinf(interval):
        return "offline (s = inf)"
    if schedule != "periodic":
        return f"{schedule} schedule"
    return "massed (s = 0)" if interval == 0 else f"s = {interval:g}"


def comparison_words(comparison: str) -> str:
    """'massed' or 'control:matched_horizon' -> 'massed', 'its matched-horizon control'."""
    if comparison.startswith("control:"):
        return f"its {comparison.split(':', 1)[1].replace('_', '-')} control"
    return COMPARISON_WORDS.get(comparison, comparison)


def control_words(kind: str) -> str:
    """'matched_horizon' -> 'matched-horizon control'."""
    return f"{kind.replace('_', '-')} control"


#: What a control run matches besides the spacing (spacing.config's ``matched_control`` of each
#: method): when spaced beats massed but not its control, this is where the gain comes from.
CONTROL_MATCHES = {"matched_horizon": "the longer averaging horizon", "matched_rate": "the lower mean dropout rate",
                   "matched_lead": "the teacher's lead"}


def control_matches(kind: str) -> str:
    """'the longer averaging horizon'; for an unknown kind, 'what its <kind> control matches'."""
    return CONTROL_MATCHES.get(kind, f"what its {control_words(kind)} matches")


def signed(value: float, digits: int = 2) -> str:
    """'+0.82', '-1.23'; a value that rounds to zero is '+0.00', never '-0.00'."""
    return f"{round(value, digits) + 0.0:+.{digits}f}"


def hours_text(hours: float) -> str:
    """Hours with sensible precision: '12', '0.41', '0.0032'."""
    if hours >= 10:
        return f"{hours:.0f}"
    if hours >= 0.1:
        return f"{hours:.2f}"
    return f"{hours:.2g}"
