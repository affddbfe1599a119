"""Which resolved-config keys change a run's numbers, as analysis needs it: flat and hashable.

Two runs whose resolved configs differ only in the seed and in the keys that do not change the
numbers are the same experiment; any other difference makes them different series. The list of
those keys is training's (:mod:`spacing.neutral`, torch-free, so analysis imports it without torch);
this module only flattens what is left.
"""

from __future__ import annotations

import json
from typing import Any

from spacing.neutral import comparable

SEED_KEY = "seed"


def numbers_config(config: Any) -> dict[str, Any]:
    """The resolved config as flat ``group.key`` -> value, without the seed and the neutral keys.

    Scalars stay as they are; lists and other containers become JSON text, so every value compares
    exactly and can be hashed.
    """
    if not isinstance(config, dict):
        return {}
    flat: dict[str, Any] = {}
    for key, value in comparable(config).items():
        if key != SEED_KEY:
            _flatten(str(key), value, flat)
    return flat


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}", inner, out)
    elif value is None or isinstance(value, (str, int, float)):
        out[prefix] = value
    else:
        out[prefix] = json.dumps(value, sort_keys=True)
