"""Each switch that reproduces a quirk of the paper's scripts, against the script's formula restated here.

The formulas below are written from the scripts (SunGL001/spacing_generalization: dropout/train.py,
online_KD/train_kd.py, online_KD/train_EMA.py, self_KD/train.py), not from this project's code.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from spacing.config import to_config
from spacing.data import Batch
from spacing.errors import ConfigError
from spacing.methods.distill import ReplayQueue, soft_loss
from spacing.methods.dropout import max_dropout
from spacing.methods.self_kd import ensemble_logits, exit_losses, feature_adapters
from spacing.schedule import Schedule
from tests.helpers import TINY, build_method_for, compose_config, train_epochs

# --- soft losses -------------------------------------------------------------------------------


def log_softmax(x: np.ndarray) -> np.ndarray:
    shifted = x - x.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def test_softce_is_the_self_kd_scripts_soft_cross_entropy_without_t_squared() -> None:
    rng = np.random.default_rng(1)
    s, t, T = rng.normal(size=(5, 7)), rng.normal(size=(5, 7)), 3.0
    # self_KD/train.py: -(log_softmax(outputs / T) * softmax(targets / T)).sum(dim=1).mean()
    expected = -(log_softmax(s / T) * np.exp(log_softmax(t / T))).sum(axis=1).mean()
    assert float(soft_loss(torch.tensor(s), torch.tensor(t), T, "softce")) == pytest.approx(expected, rel=1e-12)


def test_softce_gradient_is_the_kl_gradient_without_its_t_squared() -> None:
    rng = np.random.default_rng(2)
    start, teacher, T = rng.normal(size=(4, 6)), torch.tensor(rng.normal(size=(4, 6))), 3.0

    def gradient(variant: str) -> np.ndarray:
        student = torch.tensor(start, requires_grad=True)
        soft_loss(student, teacher, T, variant).backward()
        return student.grad.numpy()

    np.testing.assert_allclose(gradient("softce") * T**2, gradient("kl"), rtol=1e-10)


# --- self KD ensemble, exits and refresh timing -----------------------------------------------


def test_logit_ensemble_is_the_mean_of_the_exits_logits_and_probs_the_mean_probability() -> None:
    rng = np.random.default_rng(3)
    exits = [rng.normal(size=(6, 5)) * scale for scale in (0.5, 1.0, 4.0, 2.0)]
    tensors = [torch.tensor(x) for x in exits]
    paper = sum(exits) / len(exits)  # self_KD/train.py: ensemble = sum(outputs) / len(outputs)
    np.testing.assert_allclose(ensemble_logits(tensors, "logits").numpy(), paper, rtol=1e-12)
    probs = np.mean([np.exp(log_softmax(x)) for x in exits], axis=0)
    np.testing.assert_allclose(np.exp(ensemble_logits(tensors, "probs").numpy()), probs, rtol=1e-12)
    # The two rules can disagree: a confident exit dominates a logit average.
    confident, unsure = torch.tensor([[20.0, 0.0, 0.0]]), torch.tensor([[0.0, 3.0, 2.9]])
    four = [confident, unsure, unsure, unsure]
    assert int(ensemble_logits(four, "logits").argmax()) == 0 and int(ensemble_logits(four, "probs").argmax()) == 1


def test_self_kd_ensemble_target_follows_the_switch() -> None:
    for rule in ("logits", "probs"):
        config = to_config(compose_config(["method=self_kd", f"method.ensemble={rule}", *TINY]))
        method, data = build_method_for(config)
        images = next(iter(data.test))[0]
        method.eval_mode()
        with torch.no_grad():
            out = method.predict(images)
        exits = [out[f"exit{i + 1}"] for i in range(method.net.num_exits)]
        expected = torch.stack(exits).mean(0) if rule == "logits" else torch.stack(exits).softmax(-1).mean(0).log()
        assert torch.allclose(out["ensemble"], expected, atol=1e-6)


def test_paper_feature_loss_pulls_all_but_the_deepest_shallow_exit_through_linear_adapters() -> None:
    cfg = to_config(compose_config(["method=self_kd", "method.feature_loss=paper", "method.soft_loss=softce"])).method
    rng = np.random.default_rng(4)
    logits = [rng.normal(size=(3, 4)) for _ in range(4)]  # exits 1..3 shallow, exit 4 the deepest
    features = [rng.normal(size=(3, 5)) for _ in range(4)]
    labels = np.array([1, 0, 3])
    adapters = feature_adapters(3, 5, "paper").double()
    assert len(adapters) == 2 and all(isinstance(a, torch.nn.Linear) for a in adapters)
    W = [a.weight.detach().numpy() for a in adapters]
    b = [a.bias.detach().numpy() for a in adapters]

    def ce(x: np.ndarray) -> float:
        return float(-log_softmax(x)[np.arange(3), labels].mean())

    def softce(x: np.ndarray) -> float:  # the script's CrossEntropy at T = 3
        return float(-(log_softmax(x / 3) * np.exp(log_softmax(logits[3] / 3))).sum(axis=1).mean())

    # self_KD/train.py, outputs ordered deepest first: the feature term skips index 1, the deepest
    # shallow exit; indices 2 and 3 (our exits 2 and 1) pass their feature through a Linear layer.
    expected = [0.7 * ce(logits[i]) + 0.3 * softce(logits[i]) for i in range(3)]
    for i in range(2):
        expected[i] += 0.03 * np.linalg.norm(features[i] @ W[i].T + b[i] - features[3])
    expected.append(ce(logits[3]))
    terms = exit_losses(
        [torch.tensor(x) for x in logits], [torch.tensor(f) for f in features], torch.tensor(labels), cfg, adapters
    )
    assert [float(t.detach()) for t in terms] == pytest.approx(expected, rel=1e-9)


def test_paper_feature_adapters_are_trained_with_the_network() -> None:
    config = to_config(compose_config(["method=self_kd", "method.feature_loss=paper", *TINY]))
    method, _ = build_method_for(config)
    adapters = method.net.feature_adapters
    assert len(adapters) == method.net.num_exits - 2  # small_cnn: 3 exits, the shallowest one pulled
    trained = {id(p) for group in method.optimizer.param_groups for p in group["params"]}
    assert all(id(p) in trained for p in adapters.parameters())


def paper_self_kd_rounds(s: float, L: int, epochs: int) -> list[int]:
    """self_KD/train.py: n_iter = (epoch - 1) * len(trainloader) + i + 1 with a 0-based epoch;
    a round (kd) at every n_iter % interval == 0, interval = int(len(trainloader) * s)."""
    interval = int(L * s)
    return [epoch * L + i for epoch in range(epochs) for i in range(L) if ((epoch - 1) * L + i + 1) % interval == 0]


def project_rounds(s: float, L: int, epochs: int, late: bool) -> list[int]:
    queue = ReplayQueue(Schedule(s, "periodic", L), "rounds", L if late else 0)
    rounds = []
    for t in range(epochs * L):
        queue.push(Batch(torch.empty(0), torch.empty(0), torch.zeros(1, dtype=torch.long), t), t)
        if queue.due(t):
            rounds.append(t)
    return rounds


@pytest.mark.parametrize(("s", "L", "epochs"), [(4.0, 391, 80), (1.5, 391, 6), (1.0, 391, 3), (0.5, 391, 3), (0.3, 10, 4), (2.0, 7, 9)])
def test_late_counter_rounds_fall_where_the_self_kd_scripts_counter_puts_them(s: float, L: int, epochs: int) -> None:
    assert project_rounds(s, L, epochs, late=True) == paper_self_kd_rounds(s, L, epochs)


def test_at_s_4_on_cifar_the_first_round_ends_epoch_one_and_1173_batches_are_never_distilled() -> None:
    rounds = paper_self_kd_rounds(4.0, 391, 80)
    assert rounds == project_rounds(4.0, 391, 80, late=True)
    S = int(4.0 * 391)
    assert rounds[:3] == [390, 390 + S, 390 + 2 * S]  # n_iter = 0 at the end of epoch 1, then every S
    assert 80 * 391 - (rounds[-1] + 1) == 1173
    assert project_rounds(4.0, 391, 80, late=False)[0] == S - 1  # without the quirk: after S steps


def test_self_kd_with_the_late_counter_replays_in_the_scripts_rounds_and_drops_the_tail() -> None:
    config = to_config(compose_config([
        "method=self_kd", "method.interval=0.3", "method.replay=rounds", "method.late_counter=true",
        "method.distill_tail=false", *TINY,
    ]))
    method, data = build_method_for(config, epochs=2)
    L = data.train.steps_per_epoch
    rounds: list[int] = []
    original = method._replay
    method._replay = lambda kept: (rounds.append(method.fresh_steps - 1), original(kept))[1]  # the step t of the round
    train_epochs(method, data, 2)
    assert rounds == paper_self_kd_rounds(0.3, L, 2)
    assert method.counters()["undistilled_batches"] == 2 * L - (rounds[-1] + 1)


def test_late_counter_needs_periodic_rounds() -> None:
    with pytest.raises(ConfigError, match="method.late_counter=true shifts the rounds of a periodic schedule"):
        to_config(compose_config(["method=self_kd", "method.interval=1", "method.late_counter=true"]))


def test_offline_does_not_apply_to_self_kd() -> None:
    config = to_config(compose_config(["method=self_kd", "method.interval=inf", *TINY]))
    with pytest.raises(ConfigError, match=r"method.interval=inf \(offline: the teacher trains first\) does not apply to self_kd"):
        build_method_for(config)


def count_optimizer_steps(method) -> list[int]:  # type: ignore[no-untyped-def]
    calls: list[int] = []
    original = method.optimize
    method.optimize = lambda optimizer, loss: (calls.append(1), original(optimizer, loss))[1]
    return calls


@pytest.mark.parametrize("fresh", ["deepest", "paper"])
def test_paper_fresh_steps_skip_the_ce_step_of_a_refresh_steps_own_batch(fresh: str) -> None:
    config = to_config(compose_config([
        "method=self_kd", "method.interval=0.3", "method.replay=rounds", "method.distill_tail=false",
        f"method.fresh_steps={fresh}", *TINY,
    ]))
    method, data = build_method_for(config, epochs=1)
    # The script forwards every fresh batch through all exits, so their BatchNorm statistics see it.
    norm = method.net.adapters[0][1]
    start = norm.running_mean.clone()
    method.train_step(next(data.train.epoch(0)), 0)  # step 0 is not a refresh step
    assert torch.equal(norm.running_mean, start) == (fresh == "deepest")

    method, data = build_method_for(config, epochs=1)
    calls = count_optimizer_steps(method)
    train_epochs(method, data, 1)
    L, S = data.train.steps_per_epoch, 3
    rounds = [t for t in range(L) if (t + 1) % S == 0]
    fresh_trained = L - len(rounds) if fresh == "paper" else L  # self_KD/train.py: a kd step takes no CE step of its own
    assert len(calls) == fresh_trained + S * len(rounds)


# --- online KD ------------------------------------------------------------------------------


def test_projection_hidden_width_is_the_mean_of_student_and_teacher_widths() -> None:
    config = to_config(compose_config(["method=online_kd", "model=resnet18", "dataset=synthetic"]))
    method, _ = build_method_for(config)
    assert [layer.out_features for layer in method.projection if isinstance(layer, torch.nn.Linear)] == [512, 512]
    mixed = to_config(compose_config(["method=online_kd", "method.teacher=resnet18", *TINY]))  # student small_cnn, width 4
    method, _ = build_method_for(mixed)
    student, teacher = method.student.feature_dim, method.teacher.feature_dim
    assert (student, teacher) == (16, 512)
    assert method.projection[0].out_features == int((student + teacher) / 2)  # online_KD/models/nets.py
    fixed = to_config(compose_config(["method=online_kd", "method.projection_hidden=64", *TINY]))
    assert build_method_for(fixed)[0].projection[0].out_features == 64


@pytest.mark.parametrize("update", [False, True])
def test_replay_teacher_bn_lets_replay_forwards_update_the_teachers_running_stats(update: bool) -> None:
    config = to_config(compose_config(["method=online_kd", "method.interval=0.5", f"method.replay_teacher_bn={update}", *TINY]))
    method, data = build_method_for(config)
    batch = next(data.train.epoch(0))
    norm = method.teacher.stem[1]
    before = norm.running_mean.clone()
    with torch.no_grad():
        batch_mean = method.teacher.stem[0](batch.images).mean(dim=(0, 2, 3))
    method.replay_step(batch)
    expected = (1 - norm.momentum) * before + norm.momentum * batch_mean if update else before
    assert torch.allclose(norm.running_mean, expected, atol=1e-6)


# --- dropout ----------------------------------------------------------------------------------


def test_batch_scope_max_dropout_zeroes_what_the_scripts_maxdropout_zeroes() -> None:
    rng = np.random.default_rng(5)
    x = rng.uniform(0.1, 3.0, size=(4, 3, 5, 5)) * rng.uniform(0.2, 2.0, size=(4, 1, 1, 1))  # no zeros
    rate = 0.3
    # dropout/model/MaxDropout.py: (x - x.min()) / (x.max() - x.min()) > 1 - drop over the whole tensor
    whole = ((x - x.min()) / (x.max() - x.min()) > 1 - rate).sum()
    per_sample = sum(((s - s.min()) / (s.max() - s.min()) > 1 - rate).sum() for s in x)
    tensor = torch.tensor(x)
    assert int((max_dropout(tensor, rate, "batch") == 0).sum()) == whole
    assert int((max_dropout(tensor, rate, "sample") == 0).sum()) == per_sample
    assert whole != per_sample


def test_max_dropout_method_uses_the_configured_scope() -> None:
    config = to_config(compose_config(["method=dropout", "method.variant=max", "method.max_scope=batch", "method.p=0.4", *TINY]))
    method, data = build_method_for(config)
    seen = {}
    stage = method.model.stages[0]
    stage.register_forward_hook(lambda m, i, out: seen.__setitem__("raw", out.detach().clone()), prepend=True)
    stage.register_forward_hook(lambda m, i, out: seen.__setitem__("dropped", out.detach().clone()))
    method.train_step(next(data.train.epoch(0)), 0)
    raw = seen["raw"].numpy()
    expected = raw * ((raw - raw.min()) / (raw.max() - raw.min()) <= 1 - 0.4)
    np.testing.assert_allclose(seen["dropped"].numpy(), expected, rtol=1e-6)


def test_random_dropout_draws_a_rate_per_stage() -> None:
    config = to_config(compose_config(["method=dropout", "method.schedule=random", "method.p=0.5", "seed=7", *TINY]))
    method, data = build_method_for(config)
    method.train_step(next(data.train.epoch(0)), 0)
    # dropout/model/resnet.py: t_drop = drop * np.random.rand() anew after each stage
    expected = [0.5 * float(np.random.default_rng([7, 0xD209, 0, k]).random()) for k in range(len(method.model.stages))]
    assert method.rates == pytest.approx(expected) and len(set(method.rates)) == len(expected)


def test_paper_cutout_is_one_hole_per_batch_sized_by_the_unrounded_period() -> None:
    config = to_config(compose_config([
        "method=dropout", "method.variant=cutout", "method.paper_cutout=true", "method.cutout_size=6",
        "method.interval=0.25", *TINY,
    ]))
    method, data = build_method_for(config)
    L = data.train.steps_per_epoch
    masks = []
    original = method.model.forward
    method.model.forward = lambda images: (masks.append((images == 0).all(dim=1)), original(images))[1]
    for step, batch in zip(range(4), data.train.epoch(0)):
        method.train_step(batch, step)
    # dropout/train.py: t_lenth = length * |sin(pi / (space * len(train_loader)) * count)|, Cutout_input(int(t_lenth))
    sides = [int(6 * abs(math.sin(math.pi / (0.25 * L) * t))) for t in range(4)]
    assert sides == [0, 5, 3, 3]  # a period of 2.5 steps; rounded to 2 steps it would be 0, 6, 0, 6
    assert method.counters()["mean_cutout_size"] == pytest.approx(sum(sides) / 4)
    for mask, side in zip(masks, sides):
        assert bool((mask == mask[0]).all())  # Cutout_input: one position for the whole batch
        rows, cols = mask[0].any(dim=1).sum(), mask[0].any(dim=0).sum()
        assert rows <= 2 * (side // 2) and cols <= 2 * (side // 2)
