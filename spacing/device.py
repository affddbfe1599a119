"""Choosing the device a run trains on."""

from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path
from typing import IO

import torch

from spacing.errors import DeviceError

_claimed_gpu: tuple[int, IO[str] | None] | None = None
"""The GPU `auto` chose for this process, and the open lock file that holds it."""


def claim_gpu(count: int, lock_dir: Path) -> tuple[int, IO[str] | None]:
    """The first of `count` GPUs that no other process holds, and the open lock file holding it.

    Parallel cells on one machine (hydra/launcher=local) each call this, so each trains on its
    own GPU. The lock (flock on ``lock_dir/spacing-gpu-<i>.lock``) lasts until the file is closed
    or the process ends. With every GPU held, processes share them by pid and hold no lock.
    """
    for index in range(count):
        handle = open(lock_dir / f"spacing-gpu-{index}.lock", "w")  # noqa: SIM115 - kept open: it is the lock
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        return index, handle
    return os.getpid() % count, None


def resolve_device(requested: str) -> torch.device:
    """`auto` picks CUDA when present (with several GPUs, one no other run here holds), else CPU;
    an explicit `cuda` without a GPU is an error."""
    global _claimed_gpu
    if requested == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        count = torch.cuda.device_count()
        if count == 1:
            return torch.device("cuda")
        if _claimed_gpu is None:
            _claimed_gpu = claim_gpu(count, Path(tempfile.gettempdir()))
        return torch.device("cuda", _claimed_gpu[0])
    if requested.startswith("cuda"):
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
    return torch.device("cpu")
