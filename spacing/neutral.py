"""Config keys that do not change a run's numbers: the one list, and what follows from it.

A run's numbers (its metrics, history and checkpoints) are a function of its resolved config,
except for the keys listed here: where the run executes, how it is logged, where its data is
read from, whether its files are kept. Two facts are derived from this one list:

- the runner resumes a checkpoint, or skips a completed run, whose config differs from the new
  one only in these keys (:func:`comparable`);
- a sweep cell's dir is named from its resolved config without these keys (:func:`cell_dir_name`),
  so cells whose configs are equal land in the same dir whether a value was typed on the command
  line or came from a sweep file, and changing one of these keys finds the finished cells again.

Placement keys are listed because they name a request, not what ran: ``trainer.device=auto`` and
``trainer.threads=null`` depend on the machine. Runs are bitwise reproducible only on the same
device kind and thread count; result.json records both, and analysis warns when the cells it
pairs differ in them. ``trainer.compile`` is *not* listed: compiled kernels change the numbers.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

NEUTRAL_KEYS: tuple[str, ...] = (
    "trainer.device",
    "trainer.threads",
    "trainer.log_every",
    "trainer.resume",
    "trainer.keep_checkpoint",
    "dataset.root",
    "dataset.download",
    "dataset.workers",
    "fused_cells",
)
"""Dotted keys whose value never changes a run's numbers."""

NEUTRAL_GROUPS: tuple[str, ...] = ("logger", "objective")
"""Top-level groups that never change a run's numbers (trackers; what a sweeper is told)."""

EVAL_BATCH_SIZE = "trainer.eval_batch_size"
EVAL_BATCH_DEPENDENT = ("method.eval_dropout", "method.eval_train_mode")
"""Switches under which evaluation depends on how test images are batched (dropout masks and its
step counter advance per forward; BatchNorm uses the test batch's statistics). With all of them
off (or absent: not every method has them), ``trainer.eval_batch_size`` is neutral too."""

CELL_HASH_LENGTH = 10
"""Hex digits of the config digest in a cell dir's name (40 bits: no collision in any real grid)."""


def neutral_keys(config: dict[str, Any]) -> tuple[str, ...]:
    """The dotted keys that do not change the numbers of a run with resolved `config`."""
    if any(_get(config, key) for key in EVAL_BATCH_DEPENDENT):
        return NEUTRAL_KEYS
    return (*NEUTRAL_KEYS, EVAL_BATCH_SIZE)


def comparable(config: dict[str, Any]) -> dict[str, Any]:
    """`config` (a resolved config as a plain dict) without the keys and groups that do not change the numbers."""
    out = copy.deepcopy(config)
    for key in neutral_keys(config):
        parent, _, leaf = key.rpartition(".")
        node = _get(out, parent)
        if isinstance(node, dict):
            node.pop(leaf, None)
    for group in NEUTRAL_GROUPS:
        out.pop(group, None)
    return out


def cell_dir_name(config: dict[str, Any], shown: tuple[str, ...] = ()) -> str:
    """A sweep cell's dir name: readable identity fields, then a digest of the comparable config.

    E.g. ``ema-i0.5-seed1-3f9a2c1b7e``, and ``ema-i0.5-control-seed1-...`` for the control run of that
    spaced cell (``method.control=matched``). Equal comparable configs give equal names; the digest
    keeps cells apart that differ in anything else (decay, epochs, dataset, ...). `shown` names
    dotted keys whose values are shown too, before the digest (an optimising sweeper's tuned keys:
    ``ema-i0-seed0-lr0.0123-...``); the digest alone keeps names apart, so they are for the reader.
    """
    numbers = comparable(config)
    digest = hashlib.sha256(json.dumps(numbers, sort_keys=True).encode()).hexdigest()[:CELL_HASH_LENGTH]
    method = numbers.get("method") or {}
    parts = [str(method.get("name")), f"i{_text(method.get('interval'))}"]
    if method.get("schedule") not in (None, "periodic"):
        parts.append(str(method["schedule"]))
    if method.get("control") not in (None, "none"):
        parts.append("control")
    parts.append(f"seed{numbers.get('seed')}")
    parts += [f"{key.rpartition('.')[2]}{_text(_get(numbers, key))}" for key in shown]
    parts.append(digest)
    return "-".join(parts)


def _get(config: dict[str, Any], dotted: str) -> Any:
    """``config[a][b]`` for ``a.b``, or None when any part is missing."""
    node: Any = config
    for part in dotted.split(".") if dotted else ():
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
