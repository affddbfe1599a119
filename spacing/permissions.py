"""Who may change what a launch leaves on disk: new dirs and files get no group or other write permission.

A sweep dir is a trust boundary. Checkpoints are read as data (:mod:`spacing.checkpoint`), but the
SLURM launcher's job files in ``<sweep dir>/.submitit/`` are pickles that submitit unpickles on the
compute node, and the launching process unpickles the results the tasks write there: whoever can
write those files runs code as whoever launches or resumes the sweep. So, before Hydra creates
anything, the launching process takes group and other write out of its umask. Everything it starts
inherits that umask (Hydra's run and sweep dirs, the cell dirs, ``.launches/``, ``.submitit/``,
joblib's workers, and ``sbatch``, whose jobs run with the umask of their submission), while a stricter
umask of the user's stays as it is. A user who wants a group to share a sweep says so with
``+hydra.sweep.mode=775`` (Hydra's key, which the SLURM launcher applies to the sweep dir): its group
and other write bits are then left to the user's umask. A sweep dir that is group- or world-writable
gets one warning per launch.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from spacing.errors import ConfigError

SHARED_WRITE = stat.S_IWGRP | stat.S_IWOTH
"""The permission bits that let others than the owner change a dir's entries."""


def keep_private(granted: int = 0) -> None:
    """Add group and other write, except the bits of `granted`, to this process's umask."""
    current = os.umask(0o077)
    os.umask(current | (SHARED_WRITE & ~granted))


def sweep_mode(master: DictConfig) -> int | None:
    """The mode ``hydra.sweep.mode`` asks for (octal digits, as Hydra reads it), or None when unset."""
    value = OmegaConf.select(master, "hydra.sweep.mode")
    if value is None:
        return None
    try:
        return int(str(value), 8)
    except ValueError:
        raise ConfigError(f"hydra.sweep.mode must be permission bits in octal, like 755; got {value!r}.") from None


def guard_outputs(master: DictConfig, multirun: bool) -> None:
    """Call before a launch creates anything: new files and dirs stay private, unless a multirun's
    ``hydra.sweep.mode`` grants group or other write; warns (once, on stderr) when the sweep dir is shared."""
    mode = sweep_mode(master) if multirun else None
    keep_private(mode or 0)
    if multirun:
        warn_if_shared(Path(str(master.hydra.sweep.dir)), mode)


def warn_if_shared(sweep_dir: Path, mode: int | None) -> None:
    """One warning when `sweep_dir` is, or `mode` makes it, group- or world-writable."""
    try:
        current = sweep_dir.stat().st_mode
    except OSError:  # not created yet
        current = 0
    shared = (current | (mode or 0)) & SHARED_WRITE
    if not shared:
        return
    who = " and ".join(name for bit, name in ((stat.S_IWGRP, "its group"), (stat.S_IWOTH, "all users")) if shared & bit)
    print(
        f"warning: the sweep dir {sweep_dir} can be written by {who}: anyone who can write there can run code as "
        "whoever launches or resumes this sweep (submitit unpickles the job files in .submitit/); "
        f"unless you trust them, use a dir only you can write (chmod go-w {sweep_dir}).",
        file=sys.stderr,
    )
