"""``trainer.compile=true`` compiles every entry point a method uses as one graph, with no silent fall-back.

A counting backend stands in for inductor (no C++ compiler needed): it records each graph Dynamo
hands it and runs the graph as traced. ``fail_on_recompile_limit_hit`` turns the one fall-back
that fullgraph compilation would otherwise allow into an error, and Dynamo's counters show
graph breaks, so a run that finishes here ran every model call compiled.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch._dynamo.utils import counters

import spacing.speed
from spacing.config import ModelConfig
from spacing.models import MODELS, build_model, compile_module
from spacing.models.staged import StagedNet
from spacing.runner import run
from tests.conftest import compose_config
from tests.models.test_architectures import SMALL_WIDTH

RUN = (
    "dataset=synthetic",
    "dataset.train_size=190",  # 152 after validation (38): 4 batches of 32 and a short one of 24
    "dataset.test_size=100",
    "model=small_cnn",
    "model.width=4",
    "trainer.batch_size=32",
    "trainer.eval_batch_size=64",
    "trainer.epochs=2",
    "trainer.device=cpu",
)
TRAIN_STEPS, EVAL_BATCHES = 2 * 5, 2 * (1 + 2)  # per run: 5 steps an epoch; validation 1 batch, test 2
METHODS = {
    "baseline": ["method=baseline"],
    "dropout": ["method=dropout", "method.interval=0.5"],
    "dropout_max": ["method=dropout", "method.interval=0.5", "method.variant=max", "method.eval_dropout=true"],
    "ema": ["method=ema", "method.interval=0.5", "method.buffers=recompute"],
    "online_kd_0": ["method=online_kd", "method.interval=0"],
    "online_kd_1": ["method=online_kd", "method.interval=1"],
    "online_kd_inf": ["method=online_kd", "method.interval=inf"],
    "self_kd": ["method=self_kd", "method.interval=1"],
}


class CountingBackend:
    """A torch.compile backend that counts the graphs it is given and their calls, with and without grad."""

    def __init__(self) -> None:
        self.graphs = 0
        self.calls = {True: 0, False: 0}

    def __call__(self, gm: torch.fx.GraphModule, example_inputs: list[torch.Tensor]) -> Callable[..., object]:
        self.graphs += 1

        def run_graph(*args: object) -> object:
            self.calls[torch.is_grad_enabled()] += 1
            return gm.forward(*args)

        return run_graph


@pytest.fixture
def backend(monkeypatch: pytest.MonkeyPatch) -> CountingBackend:
    """A fresh Dynamo with the counting backend behind trainer.compile=true and limit hits raising."""
    torch._dynamo.reset()
    counters.clear()
    counting = CountingBackend()
    monkeypatch.setattr(spacing.speed, "COMPILE_BACKEND", counting)
    with torch._dynamo.config.patch(fail_on_recompile_limit_hit=True):
        yield counting
    torch._dynamo.reset()


@pytest.mark.parametrize("name", list(METHODS))
def test_every_model_call_of_a_run_is_compiled_and_computes_what_eager_does(name: str, backend: CountingBackend, tmp_path: Path) -> None:
    compiled = run(compose_config([*RUN, *METHODS[name], "trainer.compile=true"]), tmp_path / "compiled")
    assert compiled["status"] == "completed"
    assert dict(counters["graph_break"]) == {}
    assert 1 <= backend.graphs <= 6, backend.graphs  # a handful of graphs (train / eval / teacher re-reads), not one per shape
    assert backend.calls[True] >= TRAIN_STEPS  # every training forward ran a graph
    assert backend.calls[False] >= EVAL_BATCHES  # and so did evaluation (under no_grad)

    eager = run(compose_config([*RUN, *METHODS[name], "trainer.compile=false"]), tmp_path / "eager")
    assert compiled["metrics"] == eager["metrics"]


def test_entry_points_share_graphs_across_instances_and_copies_keep_their_own_weights(backend: CountingBackend) -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="small_cnn", width=4), num_classes=3, in_channels=1, image_size=8)
    keys = list(model.state_dict())
    compile_module(model, backend)
    assert list(model.state_dict()) == keys  # checkpoints keep their parameter names
    twin = copy.deepcopy(model)  # what EMA does
    with torch.no_grad():
        for p in twin.parameters():
            p.mul_(-1)
    model.eval(), twin.eval()
    images = torch.randn(5, 1, 8, 8)
    with torch.no_grad():
        outputs = [model(images), twin(images), model.forward_with_features(images)[0], model.stage_outputs(images)[-1]]
    assert backend.graphs == 3  # forward, forward_with_features, stage_outputs: the twin reused forward's graph
    assert not torch.equal(outputs[0], outputs[1])
    plain = build_model(ModelConfig(name="small_cnn", width=4), num_classes=3, in_channels=1, image_size=8).eval()
    plain.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(outputs[0], plain(images))
        torch.testing.assert_close(outputs[2], plain(images))
        torch.testing.assert_close(outputs[3], plain.stage_outputs(images)[-1])


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_architecture_compiles_as_one_graph(name: str, backend: CountingBackend) -> None:
    model = build_model(ModelConfig(name=name, width=SMALL_WIDTH[name]), num_classes=5, in_channels=3, image_size=32)
    assert isinstance(model, StagedNet)
    compile_module(model, backend)
    model(torch.randn(4, 3, 32, 32)).sum().backward()  # fullgraph: a graph break would raise here
    model.eval()
    with torch.no_grad():
        model(torch.randn(3, 3, 32, 32))
    assert dict(counters["graph_break"]) == {}
    assert backend.graphs == 2 and backend.calls == {True: 1, False: 1}
