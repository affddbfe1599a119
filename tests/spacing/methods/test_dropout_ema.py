"""Spaced dropout and spaced EMA: rates, eval behaviour, update steps and the averaging itself."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from spacing.config import to_config
from spacing.errors import ConfigError
from spacing.methods.dropout import max_dropout
from spacing.methods.ema import SpacedEMA
from tests.helpers import TINY, build_method_for, compose_config, train_epochs

def test_dropout_rate_follows_the_sine_over_two_periods() -> None:
    config = to_config(compose_config(["method=dropout", "method.interval=0.4", "method.p=0.5", *TINY]))
    method, data = build_method_for(config)
    assert data.train.steps_per_epoch == 10  # S = int(0.4 * 10) = 4
    rates = []
    for step, batch in enumerate(data.train.epoch(0)):
        if step == 8:
            break
        method.train_step(batch, step)
        assert len(set(method.rates)) == 1  # a periodic rate is the same after every stage
        rates.append(method.rates[0])
    half = 0.5 * math.sqrt(0.5)
    assert rates == pytest.approx([0.0, half, 0.5, half, 0.0, half, 0.5, half], abs=1e-12)
    assert method.counters()["mean_dropout_rate"] == pytest.approx(sum(rates) / 8)


def test_a_one_step_dropout_period_is_refused() -> None:
    config = to_config(compose_config(["method=dropout", "method.interval=0.1", *TINY]))  # S = int(0.1 * 10) = 1
    with pytest.raises(ConfigError, match=r"period of 1 step, where \|sin\(pi t / S\)\| is always 0"):
        build_method_for(config)


def test_dropout_is_off_at_eval_by_default_and_on_with_the_paper_switch() -> None:
    config = to_config(compose_config(["method=dropout", "method.p=0.5", *TINY]))
    method, data = build_method_for(config)
    images = next(iter(data.test))[0]
    method.eval_mode()
    with torch.no_grad():
        first, second = method.predict(images)["model"], method.predict(images)["model"]
        plain = method.model.forward_with_features(images)[0]
    assert torch.equal(first, second) and torch.equal(first, plain)
    assert method.counters()["dropout_forwards"] == 0

    quirky = to_config(compose_config(["method=dropout", "method.p=0.5", "method.eval_dropout=true", *TINY]))
    method, _ = build_method_for(quirky)
    method.eval_mode()
    with torch.no_grad():
        first, second = method.predict(images)["model"], method.predict(images)["model"]
    assert not torch.equal(first, second)
    assert method.counters()["dropout_forwards"] == 2


def test_max_dropout_zeroes_the_most_active_units() -> None:
    x = torch.tensor([[0.0, 1.0, 2.0, 3.0, 4.0]])
    assert max_dropout(x, 0.3).tolist() == [[0.0, 1.0, 2.0, 0.0, 0.0]]  # normalised 0, .25, .5 kept; .75, 1 > .7
    assert torch.equal(max_dropout(x, 0.0), x)


def test_spaced_cutout_hole_follows_the_sine() -> None:
    config = to_config(
        compose_config(["method=dropout", "method.variant=cutout", "method.cutout_size=6", "method.interval=0.4", *TINY])
    )
    method, data = build_method_for(config)
    seen = []
    original = method.model.forward
    method.model.forward = lambda images: (seen.append((images == 0).all(dim=1).flatten(1).sum(1).max().item()), original(images))[1]
    for step, batch in zip(range(3), data.train.epoch(0)):
        method.train_step(batch, step)
    assert seen == [0, 16, 36]  # sides round(6 * |sin(pi t / 4)|) = 0, 4, 6 -> largest holes 0, 4x4, 6x6
    assert method.counters()["mean_cutout_size"] == pytest.approx((0 + 4 + 6) / 3)


@pytest.mark.parametrize("interval,schedule", [(0.0, "periodic"), (0.3, "periodic"), (0.0, "random")])
def test_ema_updates_at_the_schedules_refresh_steps(interval: float, schedule: str) -> None:
    config = to_config(
        compose_config(["method=ema", f"method.interval={interval}", f"method.schedule={schedule}", "seed=4", *TINY])
    )
    method, data = build_method_for(config)
    updates: list[int] = []
    original = method.update
    method.update = lambda step: (updates.append(step), original(step))
    total = train_epochs(method, data, 2)
    assert updates == method.schedule.refresh_steps(total)
    if schedule == "periodic" and interval == 0:
        assert updates == list(range(total))
    elif schedule == "periodic":
        assert updates == [2, 5, 8, 11, 14, 17]  # S = int(0.3 * 10) = 3
    counters = method.counters()
    assert (counters["ema_updates"], counters["ema_first_update_step"], counters["ema_last_update_step"]) == (
        len(updates), updates[0], updates[-1]
    )


@pytest.mark.parametrize("buffers", ["average", "copy", "none"])
def test_ema_update_averages_weights_and_treats_bn_buffers_as_configured(buffers: str) -> None:
    config = to_config(compose_config(["method=ema", "method.decay=0.9", f"method.buffers={buffers}", *TINY]))
    method, data = build_method_for(config)
    assert isinstance(method, SpacedEMA)
    init = {k: v.clone() for k, v in method.ema.state_dict().items()}
    method.train_step(next(data.train.epoch(0)), 0)
    live = method.model.state_dict()
    shadow = method.ema.state_dict()
    weight = "classifier.weight"
    assert torch.allclose(shadow[weight], 0.9 * init[weight] + 0.1 * live[weight])
    mean = "stem.1.running_mean"
    expected = {"average": 0.9 * init[mean] + 0.1 * live[mean], "copy": live[mean], "none": init[mean]}[buffers]
    assert torch.allclose(shadow[mean], expected)


def test_ema_recompute_sets_exact_bn_statistics_of_the_shadow() -> None:
    config = to_config(compose_config(["method=ema", "method.buffers=recompute", "method.recompute_batches=3", *TINY]))
    method, data = build_method_for(config, epochs=1)
    train_epochs(method, data, 1)
    batches = [b.images for _, b in zip(range(3), data.train.epoch(0))]
    stem = method.ema.stem
    with torch.no_grad():
        activations = torch.cat([stem[0](images) for images in batches])
    assert torch.allclose(stem[1].running_mean, activations.mean(dim=(0, 2, 3)), atol=1e-5)


def test_dropout_evaluates_with_batchnorm_statistics_of_the_network_without_dropout() -> None:
    """The BatchNorm after a dropped-out stage must not keep the statistics of dropped-out activations."""
    config = to_config(compose_config(["method=dropout", "method.p=0.5", "method.recompute_batches=3", *TINY]))
    method, data = build_method_for(config, epochs=1)
    train_epochs(method, data, 1)
    batches = [b.images for _, b in zip(range(3), data.train.epoch(0))]
    def stage1_bn(model: torch.nn.Module) -> torch.nn.BatchNorm2d:
        return next(m for m in model.stages[1].modules() if isinstance(m, torch.nn.BatchNorm2d))

    # What BatchNorm sees in a training-mode forward without dropout (the hooks drop only while the
    # method's model trains; a copy in train mode with the original in eval mode runs without them).
    method.model.eval()
    twin = copy.deepcopy(method.model).train()
    inputs: list[torch.Tensor] = []
    stage1_bn(twin).register_forward_hook(lambda module, args, out: inputs.append(args[0]))
    with torch.no_grad():
        for images in batches:
            twin(images)
    # momentum None: the running stats are the average over batches of each batch's mean and unbiased variance
    means = torch.stack([x.mean(dim=(0, 2, 3)) for x in inputs]).mean(0)
    variances = torch.stack([x.var(dim=(0, 2, 3)) for x in inputs]).mean(0)
    recomputed = stage1_bn(method.model)
    assert torch.allclose(recomputed.running_mean, means, atol=1e-5)
    assert torch.allclose(recomputed.running_var, variances, rtol=1e-4, atol=1e-6)

    running = to_config(compose_config(["method=dropout", "method.p=0.5", "method.eval_bn=running", *TINY]))
    method, data = build_method_for(running, epochs=1)
    train_epochs(method, data, 1)
    assert not torch.allclose(stage1_bn(method.model).running_var, variances, rtol=0.05)  # what training under dropout left
