"""Choosing the device a run trains on."""

from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path
from typing import IO

import torch

from spacing.errors import DeviceError

_claimed_gpu: tuple[int, IO[bytes] | None] | None = None
"""The GPU `auto` chose for this process (its visible index), and the open lock file that holds it."""


def visible_gpu_uuids() -> list[str]:
    """The UUID of each visible GPU, by visible index.

    A UUID names the physical GPU whatever ``CUDA_VISIBLE_DEVICES`` numbers it as, so two
    processes that see different subsets of a machine's GPUs still agree on which is which.
    """
    return [str(torch.cuda.get_device_properties(index).uuid) for index in range(torch.cuda.device_count())]


def _open_lock(path: Path) -> IO[bytes] | None:
    """The lock file at `path`, opened for flock (created readable by every user if missing); None if we may not open it.

    Opening read-only without O_CREAT first matters in a shared /tmp: Linux refuses an O_CREAT
    open of another user's file in a sticky directory (fs.protected_regular), even a readable one.
    A file we may not open at all is another user's lock we cannot test: it counts as held.
    """
    try:
        return open(path, "rb")  # noqa: SIM115 - kept open: it is the lock
    except FileNotFoundError:
        pass
    except PermissionError:
        return None
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:  # another process created it just now
        return _open_lock(path)
    except PermissionError:
        return None
    os.fchmod(descriptor, 0o644)  # whatever the umask: other users must be able to open it to see it held
    return os.fdopen(descriptor, "rb")


def claim_gpu(uuids: list[str], lock_dir: Path) -> tuple[int, IO[bytes] | None]:
    """The visible index of the first GPU in `uuids` that no other process holds, and the open lock file holding it.

    Parallel cells on one machine (hydra/launcher=local) each call this, so each trains on its
    own GPU. The lock (flock on ``lock_dir/spacing-gpu-<uuid>.lock``) lasts until the file is
    closed or the process ends; locks are keyed by the physical GPU, and a lock file this user
    may not open counts as held. With every GPU held, processes share them by pid and hold no lock.
    """
    for index, uuid in enumerate(uuids):
        handle = _open_lock(lock_dir / f"spacing-gpu-{uuid}.lock")
        if handle is None:
            continue
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        return index, handle
    return os.getpid() % len(uuids), None


def resolve_device(requested: str) -> torch.device:
    """`auto` picks CUDA when present (with several GPUs, one no other run here holds), else CPU;
    an explicit `cuda` without a GPU is an error. A chosen GPU becomes the current CUDA device,
    so libraries that allocate on "the" GPU (cuDNN, autotuners) use it too."""
    global _claimed_gpu
    if requested == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        if torch.cuda.device_count() == 1:
            return torch.device("cuda")
        if _claimed_gpu is None:
            _claimed_gpu = claim_gpu(visible_gpu_uuids(), Path(tempfile.gettempdir()))
        torch.cuda.set_device(_claimed_gpu[0])
        return torch.device("cuda", _claimed_gpu[0])
    if requested.startswith("cuda"):
        device = check_device(requested)
        if device.index is not None:
            torch.cuda.set_device(device.index)
        return device
    return torch.device("cpu")


def check_device(requested: str) -> torch.device:
    """The CUDA device `requested` (``cuda`` or ``cuda:N``) names; DeviceError when this machine has no such GPU."""
    if not torch.cuda.is_available():
        raise DeviceError(
            f"trainer.device={requested} was requested but no CUDA GPU is visible; "
            "use trainer.device=cpu (or auto)."
        )
    device = torch.device(requested)
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise DeviceError(
            f"trainer.device={requested} names a GPU that does not exist "
            f"({torch.cuda.device_count()} visible); use cuda:0..cuda:{torch.cuda.device_count() - 1}."
        )
    return device
