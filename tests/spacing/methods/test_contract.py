"""What every registered method promises the loop, checked for each method in spacing.methods.METHODS:
a method gets these tests by registering.

- it declares its config (the schema of its name), targets and a main target among them;
- predict, after eval_mode, evaluates every module in eval mode, gives the same logits twice and
  changes no state (no BatchNorm statistics, no clock, no counter);
- its state_dict round-trips: a fresh method that loads it holds the same state, counts the same,
  and trains on exactly as the original does;
- its counters are named numbers, present from the start and across training and loading;
- a run interrupted mid-epoch and resumed ends exactly where an uninterrupted run ends.

Each method is checked massed (its default) and spaced (interval 0.5), on tiny synthetic data.
The resume check also covers the states that only some settings carry: offline KD interrupted in
its student phase (epoch 5 of 2 x 3), and the paper's self KD and dropout settings (faithful=paper:
rounds of a late counter, a dropout clock moved by test forwards).
"""

from __future__ import annotations

import copy
import csv
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from spacing.config import method_schemas, to_config
from spacing.methods import METHODS, Method
from spacing.runner import run
from tests.helpers import TINY, build_method_for, compose_config, train_epochs

INTERVALS = (0.0, 0.5)
CASES = [(name, interval) for name in METHODS for interval in INTERVALS]
IDS = [f"{name}-i{interval:g}" for name, interval in CASES]


def built(name: str, interval: float, epochs: int = 2) -> tuple[Method, Any]:
    config = to_config(compose_config([f"method={name}", f"method.interval={interval}", *TINY]))
    return build_method_for(config, epochs=epochs)


def train_steps(method: Method, data: Any, steps: int) -> None:
    """`steps` training steps of epoch 0, as the loop takes them."""
    method.train_mode()
    for step, batch in zip(range(steps), data.train.epoch(0)):
        method.train_step(batch, step)
        method.end_iteration()


def same(a: Any, b: Any) -> bool:
    """Nested states equal: tensors exactly (dtype, shape, values), everything else by ==."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


@pytest.mark.parametrize("name", list(METHODS))
def test_a_method_declares_its_config_targets_and_main_target(name: str) -> None:
    method_class = METHODS[name]
    assert method_class.config is method_schemas()[name] and method_class.config.name == name
    method, _ = built(name, 0.0)
    assert method.targets and len(set(method.targets)) == len(method.targets)
    assert method.main_target in method.targets
    assert method.strength_name is None or hasattr(method.cfg, method.strength_name)


@pytest.mark.parametrize("name,interval", CASES, ids=IDS)
def test_predict_in_eval_mode_evaluates_every_target_and_changes_nothing(name: str, interval: float) -> None:
    method, data = built(name, interval)
    train_steps(method, data, 3)
    images = next(iter(data.test))[0]
    before = copy.deepcopy(method.state_dict())
    counters = method.counters()
    method.eval_mode("test")
    assert not any(module.training for module in method.modules().values())
    with torch.no_grad():
        first, second = method.predict(images), method.predict(images)
    assert set(first) == set(method.targets)
    assert all(logits.shape == (len(images), data.num_classes) for logits in first.values())
    assert all(torch.equal(first[target], second[target]) for target in first)
    assert same(method.state_dict(), before) and method.counters() == counters


@pytest.mark.parametrize("name,interval", CASES, ids=IDS)
def test_state_dict_round_trips_and_training_goes_on_identically(name: str, interval: float) -> None:
    original, data = built(name, interval)
    train_steps(original, data, 4)
    state = original.state_dict()
    loaded, _ = built(name, interval)
    loaded.load_state_dict(copy.deepcopy(state))
    assert same(loaded.state_dict(), state)
    assert loaded.counters() == original.counters()
    next_batches = [batch for _, batch in zip(range(2), data.train.epoch(1))]
    for method in (original, loaded):
        torch.manual_seed(7)  # the same draws for both from here on (dropout masks)
        method.train_mode()
        for step, batch in enumerate(next_batches, start=data.train.steps_per_epoch):
            method.train_step(batch, step)
            method.end_iteration()
    assert same(loaded.state_dict(), original.state_dict())
    assert loaded.counters() == original.counters()


@pytest.mark.parametrize("name,interval", CASES, ids=IDS)
def test_counters_are_named_numbers_present_from_the_start(name: str, interval: float) -> None:
    method, data = built(name, interval)
    names = set(method.counters())
    steps = train_epochs(method, data, 1)
    counters = method.counters()
    assert set(counters) == names and steps == data.train.steps_per_epoch
    assert all(isinstance(key, str) for key in counters)
    assert all(value is None or (isinstance(value, (int, float)) and math.isfinite(value)) for value in counters.values())
    assert json.loads(json.dumps(counters)) == counters  # as result.json holds them


RESUME_CASES = {
    **{f"{name}-i0.5": ([f"method={name}", "method.interval=0.5"], 2) for name in METHODS},
    "ema-random": (["method=ema", "method.schedule=random", "method.decay=0.9"], 2),
    "self_kd-rounds": (["method=self_kd", "method.interval=0.7", "method.replay=rounds"], 2),
    "online_kd-offline": (["method=online_kd", "method.interval=inf", "trainer.lr_schedule=cosine"], 4),
    "self_kd-paper": (["method=self_kd", "method.interval=0.7", "faithful=paper", "dataset.val_fraction=0.2"], 2),
    "dropout-paper": (["method=dropout", "method.interval=0.5", "faithful=paper", "dataset.val_fraction=0.2"], 2),
}
"""Overrides, and the epoch (0-based) in whose third step the run is interrupted."""


def history(out: Path) -> list[dict[str, str]]:
    with open(out / "history.csv", newline="") as handle:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(handle)]


@pytest.mark.parametrize("case", list(RESUME_CASES))
def test_interrupted_run_resumes_to_the_same_result(case: str, make_config, tmp_path: Path, monkeypatch) -> None:
    extra, interrupted_epoch = RESUME_CASES[case]
    overrides = [*extra, "trainer.epochs=3", "dataset.train_size=160", "trainer.batch_size=32"]
    full = run(make_config(*overrides), tmp_path / "full")

    method_class = METHODS[case.split("-")[0]]
    original = method_class.train_step

    def interrupt(self, batch, step):
        if step == interrupted_epoch * self.ctx.steps_per_epoch + 2:
            raise KeyboardInterrupt
        return original(self, batch, step)

    monkeypatch.setattr(method_class, "train_step", interrupt)
    with pytest.raises(KeyboardInterrupt):
        run(make_config(*overrides), tmp_path / "resumed")
    monkeypatch.setattr(method_class, "train_step", original)
    resumed = run(make_config(*overrides), tmp_path / "resumed")

    assert resumed["metrics"] == full["metrics"]
    assert resumed["counters"] == full["counters"]
    assert history(tmp_path / "resumed") == history(tmp_path / "full")
    assert json.loads((tmp_path / "resumed" / "result.json").read_text())["status"] == "completed"
    assert resumed["main_target"] == METHODS[case.split("-")[0]].main_target
