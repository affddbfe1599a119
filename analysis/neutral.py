"""Which resolved-config keys change a run's numbers: the one place analysis decides "same config".

Two runs whose resolved configs differ only in the seed and in *neutral* keys (where the data
lives, how often the progress bar updates, which tracker logs) are the same experiment; any
other difference makes them different series. The neutral list belongs to training, which uses it
to decide whether a run may resume or be skipped; analysis cannot import the runner (it never
imports torch), so the list is mirrored here and a test keeps the two equal. When training
publishes the list in a torch-free module, import it here instead and nothing else changes.
"""

from __future__ import annotations

import json
from typing import Any

NEUTRAL_KEYS: tuple[tuple[str, str], ...] = (
    ("trainer", "resume"),
    ("trainer", "keep_checkpoint"),
    ("trainer", "log_every"),
    ("trainer", "device"),
    ("trainer", "eval_batch_size"),
    ("dataset", "root"),
    ("dataset", "download"),
    ("dataset", "workers"),
    ("trainer", "compile"),
)
"""(group, key) pairs that do not change the numbers (spacing.runner.RESUME_INSENSITIVE)."""
NEUTRAL_GROUPS: tuple[str, ...] = ("logger",)
"""Whole config groups that do not change the numbers (spacing.runner.RESUME_INSENSITIVE_GROUPS)."""

SEED_KEY = "seed"


def numbers_config(config: Any) -> dict[str, Any]:
    """The resolved config as flat ``group.key`` -> value, without the seed and neutral keys.

    Scalars stay as they are; lists and other containers become JSON text, so every value compares
    exactly and can be hashed.
    """
    if not isinstance(config, dict):
        return {}
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if key != SEED_KEY and key not in NEUTRAL_GROUPS:
            _flatten(str(key), value, flat)
    for group, key in NEUTRAL_KEYS:
        flat.pop(f"{group}.{key}", None)
    return flat


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}", inner, out)
    elif value is None or isinstance(value, (str, int, float)):
        out[prefix] = value
    else:
        out[prefix] = json.dumps(value, sort_keys=True)
