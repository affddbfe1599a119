"""On a machine with several GPUs, each parallel cell (hydra/launcher=local) trains on its own GPU.

Locks are keyed by the physical GPU (its UUID), so processes that see different GPUs (different
CUDA_VISIBLE_DEVICES) never block each other; a lock file another user owns counts as held.
The CUDA queries are simulated: no GPU is needed.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import spacing.device as device
from spacing.device import claim_gpu, resolve_device, visible_gpu_uuids


def test_each_claim_gets_a_free_gpu_until_all_are_held(tmp_path: Path) -> None:
    gpus = ["GPU-aaaa", "GPU-bbbb"]
    first, first_lock = claim_gpu(gpus, tmp_path)
    second, second_lock = claim_gpu(gpus, tmp_path)
    assert (first, second) == (0, 1)
    shared, no_lock = claim_gpu(gpus, tmp_path)  # every GPU held: share one, hold nothing
    assert shared in (0, 1) and no_lock is None
    assert first_lock is not None
    first_lock.close()  # a finished cell's process releases its GPU
    again, again_lock = claim_gpu(gpus, tmp_path)
    assert again == 0 and again_lock is not None
    assert second_lock is not None


def test_processes_that_see_different_gpus_do_not_block_each_other(tmp_path: Path) -> None:
    _, on_a = claim_gpu(["GPU-a", "GPU-b"], tmp_path)  # CUDA_VISIBLE_DEVICES=0,1: takes its index 0, GPU a
    assert claim_gpu(["GPU-c", "GPU-d"], tmp_path)[0] == 0  # CUDA_VISIBLE_DEVICES=2,3: its index 0 is GPU c, free
    index, on_b = claim_gpu(["GPU-a", "GPU-b"][::-1], tmp_path)  # CUDA_VISIBLE_DEVICES=1,0: its index 0 is GPU b, free
    assert index == 0 and on_b is not None
    assert claim_gpu(["GPU-a"], tmp_path)[1] is None  # CUDA_VISIBLE_DEVICES=0 alone: GPU a is held
    assert on_a is not None


def test_a_lock_file_owned_by_someone_else_is_treated_as_held(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    foreign = tmp_path / "spacing-gpu-GPU-a.lock"
    foreign.touch()
    real_open = open

    def open_as_another_user(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        if Path(path) == foreign:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", open_as_another_user)
    index, lock = claim_gpu(["GPU-a", "GPU-b"], tmp_path)
    assert index == 1 and lock is not None


def test_a_missing_lock_file_is_created_for_every_user_to_see(tmp_path: Path) -> None:
    previous = os.umask(0o077)
    try:
        _, lock = claim_gpu(["GPU-a"], tmp_path)
    finally:
        os.umask(previous)
    assert lock is not None
    assert (tmp_path / "spacing-gpu-GPU-a.lock").stat().st_mode & 0o777 == 0o644


def fake_machine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, uuids: list[str]) -> list[int]:
    """Pretend `uuids` are the visible GPUs; returns the list torch.cuda.set_device calls land in."""
    current: list[int] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: len(uuids))
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: SimpleNamespace(uuid=uuids[index]))
    monkeypatch.setattr(torch.cuda, "set_device", current.append)
    monkeypatch.setattr(device.tempfile, "gettempdir", lambda: str(tmp_path))
    monkeypatch.setattr(device, "_claimed_gpu", None)
    return current


def test_auto_device_claims_a_free_gpu_makes_it_current_and_keeps_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    current = fake_machine(monkeypatch, tmp_path, ["GPU-x", "GPU-y", "GPU-z"])
    assert visible_gpu_uuids() == ["GPU-x", "GPU-y", "GPU-z"]
    _, held_elsewhere = claim_gpu(["GPU-x"], tmp_path)  # another run on this machine holds GPU x
    assert resolve_device("auto") == torch.device("cuda", 1)
    assert resolve_device("auto") == torch.device("cuda", 1)
    assert current == [1, 1]
    assert held_elsewhere is not None


def test_an_explicit_gpu_becomes_the_current_device(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    current = fake_machine(monkeypatch, tmp_path, ["GPU-x", "GPU-y"])
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert current == [1]
