"""On a machine with several GPUs, each parallel cell (hydra/launcher=local) trains on its own GPU."""

from __future__ import annotations

from pathlib import Path

import torch

import spacing.device as device
from spacing.device import claim_gpu, resolve_device


def test_each_claim_gets_a_free_gpu_until_all_are_held(tmp_path: Path) -> None:
    first, first_lock = claim_gpu(2, tmp_path)
    second, second_lock = claim_gpu(2, tmp_path)
    assert (first, second) == (0, 1)
    shared, no_lock = claim_gpu(2, tmp_path)  # every GPU held: share one, hold nothing
    assert shared in (0, 1) and no_lock is None
    assert first_lock is not None
    first_lock.close()  # a finished cell's process releases its GPU
    again, again_lock = claim_gpu(2, tmp_path)
    assert again == 0 and again_lock is not None
    assert second_lock is not None


def test_auto_device_keeps_the_gpu_it_claimed(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    monkeypatch.setattr(device.tempfile, "gettempdir", lambda: str(tmp_path))
    monkeypatch.setattr(device, "_claimed_gpu", None)
    _, held_elsewhere = claim_gpu(3, tmp_path)  # another run on this machine holds GPU 0
    assert resolve_device("auto") == torch.device("cuda", 1)
    assert resolve_device("auto") == torch.device("cuda", 1)
    assert held_elsewhere is not None
