"""A cell dir's checkpoints: saving each epoch's state, reading it back, and whether it may be resumed.

``checkpoint.pt`` holds the last epoch's state and ``checkpoint.prev.pt`` the one before, so a
damaged last checkpoint (a kill inside its write, a full disk, a bad sector) costs one epoch,
not the run: :func:`read_checkpoints` falls back on the previous one and names what it passed
over, which the run record keeps as ``checkpoint_recoveries``. Each save is atomic
(:func:`spacing.atomic.atomic_write`) and is also the heartbeat of the cell's claim.

A checkpoint (or a completed record) is continued only by a run of the same config, up to the
keys that do not change the numbers (:func:`refuse_other_config`, the one such check).

A checkpoint is read as data, never as code: whoever can write a cell dir must not be able to run
code as the users who resume it. :func:`load_data` reads with ``torch.load(weights_only=True)``,
which accepts tensors and plain types only, plus :data:`RELEASE_GLOBALS`; a file that names
anything else is refused before any of it runs, and treated like a damaged one.
"""

from __future__ import annotations

import logging
import pickle
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from spacing.atomic import atomic_write
from spacing.claim import Claim
from spacing.contract import CHECKPOINT_FILE, PREVIOUS_CHECKPOINT_FILE
from spacing.errors import ConfigError
from spacing.neutral import comparable
from spacing.unpickle import NUMPY_ARRAY

log = logging.getLogger(__name__)

RELEASE_GLOBALS: list[Any] = [*((found, name) for name, found in NUMPY_ARRAY.items()), type(np.dtype(np.uint32))]
"""What :func:`load_data` accepts beyond tensors and plain types: a uint32 numpy array, to read the
checkpoints of versions up to commit 63f2344, which kept numpy's RNG state as ``np.random.get_state()``'s
tuple (its key an array). They are read through this allowlist, not migrated: the first epoch a resumed
run saves rewrites the file in today's format (the key a tensor, :func:`spacing.seeding.rng_state`)."""

CHECKPOINT_KEYS = ("progress", "method", "schedules", "rng", "history", "config")
"""What a checkpoint of this harness holds at least (:meth:`spacing.loop.Trainer.state_dict`)."""


@dataclass
class Resumable:
    """What a cell dir's checkpoints offer a resume: the newest readable state, and the damaged ones passed over."""

    state: dict[str, Any] | None = None
    path: Path | None = None
    unreadable: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def epoch(self) -> int:
        return int(self.state["progress"]["epoch"]) if self.state is not None else 0

    def recoveries(self) -> list[dict[str, Any]]:
        """The record's ``checkpoint_recoveries``: those the resumed checkpoint carries, plus one per damaged file now."""
        earlier = list(self.state.get("recoveries", [])) if self.state is not None else []
        now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        return earlier + [
            {
                "at": now,
                "unreadable": path.name,
                "error": reason,
                "resumed_from": self.path.name if self.path is not None else None,
                "resumed_at_epoch": self.epoch,
            }
            for path, reason in self.unreadable
        ]


def read_checkpoints(out_dir: Path) -> Resumable:
    """The newest readable checkpoint in `out_dir` (the last one, else the one before), noting damaged ones.

    A missing last checkpoint with a previous one present is a kill between the two renames of a
    checkpoint write (see :func:`~spacing.atomic.atomic_write`), not damage.
    """
    found = Resumable()
    for name in (CHECKPOINT_FILE, PREVIOUS_CHECKPOINT_FILE):
        path = out_dir / name
        if not path.exists():
            continue
        try:
            state = _load(path)
        except Exception as exc:  # any way a damaged file fails to load: truncated zip, bad pickle, empty
            reason = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"
            log.warning("cannot read %s (%s); falling back on an earlier checkpoint", path, reason)
            found.unreadable.append((path, reason))
            continue
        found.state, found.path = state, path
        break
    return found


def read_previous(resumable: Resumable) -> Resumable | None:
    """The readable checkpoint.prev.pt behind `resumable` when that resumes from checkpoint.pt (else None):
    the one earlier epoch a fused group can go back to when its cells' checkpoints stand at different epochs."""
    if resumable.path is None or resumable.path.name != CHECKPOINT_FILE:
        return None
    path = resumable.path.parent / PREVIOUS_CHECKPOINT_FILE
    try:
        return Resumable(_load(path), path, list(resumable.unreadable)) if path.exists() else None
    except Exception:  # damaged: not a state to go back to
        return None


class NotData(ValueError):
    """A file that names code to run when loaded (a class or function outside :func:`load_data`'s allowlist),
    or whose pickle is too damaged for ``weights_only`` loading to tell."""


def load_data(source: Path | IO[bytes]) -> Any:
    """What ``torch.save`` wrote to `source`, read as data onto the CPU; raises NotData, before any of it
    runs, when it names anything but tensors, plain types and :data:`RELEASE_GLOBALS`.

    On the CPU: RNG states must be CPU tensors, and load_state_dict moves weights and optimizer state
    to where the live tensors are.
    """
    with torch.serialization.safe_globals(RELEASE_GLOBALS):
        try:
            return torch.load(source, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            raise NotData(f"refused unread: {_what_it_names(source)}, not only tensors and plain data") from exc


def _what_it_names(source: Path | IO[bytes]) -> str:
    """The code a refused file names, for the recovery note (read from its opcodes, nothing run)."""
    try:
        if not isinstance(source, Path):
            source.seek(0)
        names = torch.serialization.get_unsafe_globals_in_checkpoint(source)
    except Exception:  # not even a zip of pickles: say so without names
        names = []
    return f"it names code to run when loaded ({', '.join(names)})" if names else "it holds what weights_only loading refuses"


def _load(path: Path) -> dict[str, Any]:
    """A checkpoint's state; raises on a file that is damaged or not a checkpoint of this harness."""
    state = load_data(path)
    missing = [key for key in CHECKPOINT_KEYS if key not in state] if isinstance(state, dict) else ["all"]
    if missing:
        raise ValueError(f"not a checkpoint of this harness (missing {', '.join(missing)})")
    return state


def refuse_other_config(
    out_dir: Path, config: dict[str, Any], completed: dict[str, Any] | None, resumable: Resumable
) -> None:
    """Raise ConfigError, before anything is written, when what `out_dir` saved is of another config than `config`.

    `completed` is the dir's completed run record (if any), `resumable` its checkpoints; both are
    compared with `config` without the keys that do not change the numbers (:mod:`spacing.neutral`).
    """
    numbers = comparable(config)
    if completed is not None and comparable(completed.get("config", {})) != numbers:
        raise ConfigError(
            f"{out_dir} already holds a completed run of a different config; "
            "choose another output dir (hydra.run.dir=...) or move that one away."
        )
    if resumable.state is not None and comparable(resumable.state["config"]) != numbers:
        raise ConfigError(
            f"{resumable.path} was written by a run with a different config; choose another output dir, "
            f"set trainer.resume=false, or delete {CHECKPOINT_FILE} and {PREVIOUS_CHECKPOINT_FILE} there."
        )


def remove_checkpoints(out_dir: Path, keep_last: bool = False) -> None:
    """Delete the cell's checkpoints (all but the last with `keep_last`)."""
    names = (PREVIOUS_CHECKPOINT_FILE,) if keep_last else (CHECKPOINT_FILE, PREVIOUS_CHECKPOINT_FILE)
    for name in names:
        (out_dir / name).unlink(missing_ok=True)


class Checkpoints:
    """Where one run saves its epochs: checkpoint.pt, the previous one kept as checkpoint.prev.pt.

    `resumed` is what the run continues from: saves then replace checkpoint.pt (and, when the
    run resumed from checkpoint.prev.pt because the last one was missing or damaged, leave that
    good previous one in place until a new one exists).
    """

    def __init__(self, out_dir: Path, claim: Claim | None = None, resumed: Resumable | None = None) -> None:
        self.out_dir = out_dir
        self.claim = claim
        resumed = resumed or Resumable()
        self.saved_epoch = resumed.epoch
        """The epoch the newest good checkpoint on disk holds: where a re-launch would resume."""
        self._rotate = resumed.path is not None and resumed.path.name == CHECKPOINT_FILE
        """Whether checkpoint.pt holds this run's newest state, to be kept as checkpoint.prev.pt on the next save."""

    def save(self, state: dict[str, Any], epoch: int) -> None:
        """Write `state` (that of epoch `epoch`) to checkpoint.pt, keeping the one before as checkpoint.prev.pt.

        Only while this process still holds the cell's claim; each save is also a heartbeat.
        """
        if self.claim is not None:
            self.claim.refresh()
        previous = self.out_dir / PREVIOUS_CHECKPOINT_FILE if self._rotate else None
        atomic_write(self.out_dir / CHECKPOINT_FILE, lambda handle: torch.save(state, handle), previous=previous)
        self._rotate = True
        self.saved_epoch = epoch

    def remove(self, keep_last: bool = False) -> None:
        """The run completed: its checkpoints go (the last one stays with `keep_last`)."""
        remove_checkpoints(self.out_dir, keep_last)
