"""A checkpoint keeps the CUDA RNG state of the GPU the run used, and restores where fewer GPUs are visible.

No GPU here: torch.cuda's generator functions are replaced by a fake machine whose GPUs each
hold a distinct state, and which refuses an index it does not have, as CUDA does.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from spacing.checkpoint import load_data
from spacing.seeding import restore_rng_state, rng_state


class FakeGpus:
    """`count` visible GPUs, GPU i's generator state a distinct byte tensor; the current device is 0."""

    def __init__(self, count: int, first_value: int = 0) -> None:
        self.states = [torch.full((16,), first_value + i, dtype=torch.uint8) for i in range(count)]

    def index(self, device: torch.device | str | int) -> int:
        index = device if isinstance(device, int) else torch.device(device).index
        index = 0 if index is None else index
        if index >= len(self.states):
            raise IndexError(f"GPU {index} is not visible ({len(self.states)} are)")
        return index

    def get_rng_state(self, device: torch.device | str | int = "cuda") -> torch.Tensor:
        return self.states[self.index(device)].clone()

    def set_rng_state(self, state: torch.Tensor, device: torch.device | str | int = "cuda") -> None:
        self.states[self.index(device)] = state.clone()

    def get_rng_state_all(self) -> list[torch.Tensor]:
        return [s.clone() for s in self.states]

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: len(self.states))
        for name in ("get_rng_state", "set_rng_state", "get_rng_state_all"):
            monkeypatch.setattr(torch.cuda, name, getattr(self, name))


def saved_and_loaded(state: dict) -> dict:
    """`state` after a round trip through torch.save and the checkpoint's loader (as data, onto the CPU), as a checkpoint makes it."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return load_data(buffer)


def test_a_checkpoint_keeps_only_the_state_of_the_gpu_the_run_used(monkeypatch: pytest.MonkeyPatch) -> None:
    writer = FakeGpus(4, first_value=10)
    writer.install(monkeypatch)
    state = saved_and_loaded(rng_state(torch.device("cuda", 2)))
    assert torch.equal(state["cuda"], torch.full((16,), 12, dtype=torch.uint8))

    reader = FakeGpus(1, first_value=50)  # resumed where the scheduler shows one GPU
    reader.install(monkeypatch)
    restore_rng_state(state, torch.device("cuda"))
    assert torch.equal(reader.states[0], torch.full((16,), 12, dtype=torch.uint8))


def test_a_checkpoint_written_with_two_cuda_states_restores_where_one_is_visible(monkeypatch: pytest.MonkeyPatch) -> None:
    writer = FakeGpus(2, first_value=10)
    writer.install(monkeypatch)
    state = rng_state(torch.device("cpu"))
    state["cuda"] = torch.cuda.get_rng_state_all()  # the format of checkpoints written before: one per visible GPU
    state = saved_and_loaded(state)

    reader = FakeGpus(1, first_value=50)
    reader.install(monkeypatch)
    restore_rng_state(state, torch.device("cuda"))
    assert torch.equal(reader.states[0], torch.full((16,), 10, dtype=torch.uint8))  # the first: what an unindexed run used

    reader = FakeGpus(2, first_value=50)
    reader.install(monkeypatch)
    restore_rng_state(state, torch.device("cuda", 1))  # a run told to use GPU 1 gets GPU 1's state back
    assert [int(s[0]) for s in reader.states] == [50, 11]


def test_cpu_runs_store_and_restore_no_cuda_state(monkeypatch: pytest.MonkeyPatch) -> None:
    gpus = FakeGpus(2)
    gpus.install(monkeypatch)
    state = rng_state(torch.device("cpu"))
    assert "cuda" not in state
    restore_rng_state({**state, "cuda": gpus.get_rng_state_all()}, torch.device("cpu"))
    assert [int(s[0]) for s in gpus.states] == [0, 1]


@pytest.mark.parametrize("written_by", ["this version", "the release at 63f2344"])
def test_numpys_generator_continues_exactly_after_a_checkpoint(written_by: str) -> None:
    """Saved as a tensor key now; the release saved np.random.get_state()'s tuple, with an array."""
    np.random.seed(5)
    np.random.normal()  # a cached Gaussian: part of the state too
    state = rng_state(torch.device("cpu"))
    if written_by != "this version":
        state["numpy"] = np.random.get_state()
    expected = np.random.random(3)
    state = saved_and_loaded(state)
    np.random.seed(6)
    restore_rng_state(state, torch.device("cpu"))
    assert np.array_equal(np.random.random(3), expected)
