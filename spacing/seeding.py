"""Seeding and capturing every random number generator a run uses (for reproducibility and resume)."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state(device: torch.device) -> dict[str, Any]:
    """Every generator's state; of the CUDA generators, only that of `device`, the one the run trains on.

    One state, not one per visible GPU: a run checkpointed where 4 GPUs were visible resumes
    where the scheduler shows it only one. Tensors and plain values only (numpy's key as a
    tensor), so a checkpoint loads with ``torch.load(weights_only=True)`` (:mod:`spacing.checkpoint`).
    """
    state: dict[str, Any] = {"python": random.getstate(), "numpy": _numpy_state(), "torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng_state(state: dict[str, Any], device: torch.device) -> None:
    """Restore what :func:`rng_state` captured; the CUDA state goes to `device` (nothing without CUDA).

    Checkpoints written before one state was kept hold a list, one per then-visible GPU: the
    run used the first of them unless it was told a device index, so that index's state is
    restored where it exists, else the first. Checkpoints of versions up to commit 63f2344 hold
    numpy's state as ``np.random.get_state()``'s tuple (with an array): it restores as well.
    """
    random.setstate(state["python"])
    _restore_numpy_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" not in state or device.type != "cuda":
        return
    cuda = state["cuda"]
    if isinstance(cuda, (list, tuple)):
        index = device.index or 0
        cuda = cuda[index] if index < len(cuda) else cuda[0]
    torch.cuda.set_rng_state(cuda, device)


def _numpy_state() -> dict[str, Any]:
    """numpy's global generator state (``get_state(legacy=False)``) with its key as an int64 tensor instead of an array."""
    state = np.random.get_state(legacy=False)
    key = torch.from_numpy(state["state"]["key"].astype(np.int64))
    return {**state, "state": {**state["state"], "key": key}}


def _restore_numpy_state(state: dict[str, Any] | tuple[Any, ...]) -> None:
    """Set what :func:`_numpy_state` captured, or the tuple ``np.random.get_state()`` gives (older checkpoints)."""
    if isinstance(state, dict):
        key = np.asarray(state["state"]["key"], dtype=np.uint32)
        state = {**state, "state": {**state["state"], "key": key}}
    np.random.set_state(state)
