"""Spaced KD timing and losses: teacher lead, exactly-once distillation, tail, bit-exact replay."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from spacing.config import SelfKDConfig, to_config
from spacing.methods.distill import soft_loss
from spacing.methods.online_kd import OnlineKD
from spacing.methods.self_kd import exit_losses, feature_adapters, self_distillation_loss
from tests.helpers import TINY, build_method_for, compose_config, train_epochs



def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_soft_loss_variants_against_hand_computation() -> None:
    s = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    t = np.array([[0.5, 1.5, 1.0], [2.0, 0.0, 1.0]])
    T = 3.0
    ps, pt = softmax(s / T), softmax(t / T)
    kl = (pt * (np.log(pt) - np.log(ps))).sum() / 2 * T**2
    paper = (pt * (np.log(pt) - ps)).sum() / 2  # probabilities where log-probabilities belong, no T^2
    st, tt = torch.tensor(s), torch.tensor(t)
    assert float(soft_loss(st, tt, T, "kl")) == pytest.approx(kl, rel=1e-9)
    assert float(soft_loss(st, tt, T, "paper")) == pytest.approx(paper, rel=1e-9)


def test_self_kd_loss_terms_against_hand_computation() -> None:
    cfg = SelfKDConfig(alpha=0.3, temperature=3.0, beta=0.03)
    rng = np.random.default_rng(0)
    logits = [rng.normal(size=(4, 5)) for _ in range(3)]
    features = [rng.normal(size=(4, 6)) for _ in range(3)]
    labels = np.array([0, 3, 1, 4])

    def ce(x: np.ndarray) -> float:
        return float(-np.log(softmax(x)[np.arange(4), labels]).mean())

    def kl(x: np.ndarray, teacher: np.ndarray) -> float:
        ps, pt = softmax(x / 3), softmax(teacher / 3)
        return float((pt * (np.log(pt) - np.log(ps))).sum() / 4 * 9)

    expected = ce(logits[2]) + sum(
        0.7 * ce(logits[i]) + 0.3 * kl(logits[i], logits[2]) + 0.03 * np.linalg.norm(features[i] - features[2])
        for i in range(2)
    )
    loss = self_distillation_loss(
        [torch.tensor(x) for x in logits], [torch.tensor(f) for f in features], torch.tensor(labels), cfg,
        feature_adapters(2, 6, "all"),
    )
    assert float(loss) == pytest.approx(expected, rel=1e-9)


class Recorder:
    """Wraps an OnlineKD to record, per distilled batch, the teacher's optimizer steps and the images."""

    def __init__(self, method: OnlineKD) -> None:
        self.teacher_steps = 0
        self.fresh: dict[int, torch.Tensor] = {}
        self.distilled: list[tuple[int, int, torch.Tensor]] = []
        self.taught_at: dict[int, int] = {}
        original_step = method.teacher_optimizer.step
        original_fresh, original_student = method.fresh_step, method._student_step

        def counting_step(*args, **kwargs):
            self.teacher_steps += 1
            return original_step(*args, **kwargs)

        def fresh_step(batch, distilled_now):
            out = original_fresh(batch, distilled_now)
            self.fresh[batch.seed] = batch.images.clone()
            self.taught_at[batch.seed] = self.teacher_steps
            return out

        def student_step(batch, logits, features):
            self.distilled.append((batch.seed, self.teacher_steps, batch.images.clone()))
            return original_student(batch, logits, features)

        method.teacher_optimizer.step = counting_step
        method.fresh_step = fresh_step
        method._student_step = student_step


@pytest.mark.parametrize("interval", [0.3, 1.0])
def test_lagged_student_distils_each_batch_once_exactly_s_teacher_steps_later(interval: float) -> None:
    config = to_config(compose_config(["method=online_kd", f"method.interval={interval}", *TINY]))
    method, data = build_method_for(config, epochs=2)
    recorder = Recorder(method)
    train_epochs(method, data, epochs=2)
    S = int(interval * data.train.steps_per_epoch)
    total = 2 * data.train.steps_per_epoch
    assert [seed for seed, _, _ in recorder.distilled] == list(recorder.fresh)  # each once, in order
    leads = [steps - recorder.taught_at[seed] for seed, steps, _ in recorder.distilled]
    assert leads[: total - S] == [S] * (total - S)
    assert leads[total - S :] == list(range(S - 1, -1, -1))  # the tail, distilled at the end
    for seed, _, images in recorder.distilled:
        assert torch.equal(images, recorder.fresh[seed])
    counters = method.counters()
    assert counters["fresh_steps"] == counters["distill_steps"] == total
    assert counters["teacher_lead_max"] == S and counters["replay_peak_batches"] == S + 1


def test_rounds_replay_every_s_steps_with_the_teacher_up_to_s_minus_1_ahead() -> None:
    config = to_config(compose_config(["method=online_kd", "method.interval=0.5", "method.replay=rounds", *TINY]))
    method, data = build_method_for(config, epochs=1)
    recorder = Recorder(method)
    train_epochs(method, data, epochs=1)
    S, n = int(0.5 * data.train.steps_per_epoch), data.train.steps_per_epoch
    leads = [steps - recorder.taught_at[seed] for seed, steps, _ in recorder.distilled]
    full_rounds = n // S
    assert leads[: full_rounds * S] == list(range(S - 1, -1, -1)) * full_rounds
    assert method.counters()["replay_rounds"] == full_rounds + (1 if n % S else 0)


def test_the_tail_is_dropped_when_distill_tail_is_off() -> None:
    config = to_config(compose_config(["method=online_kd", "method.interval=0.5", "method.distill_tail=false", *TINY]))
    method, data = build_method_for(config, epochs=1)
    recorder = Recorder(method)
    train_epochs(method, data, epochs=1)
    S, n = int(0.5 * data.train.steps_per_epoch), data.train.steps_per_epoch
    assert len(recorder.distilled) == n - S
    assert method.counters()["undistilled_batches"] == S


def test_massed_kd_uses_the_teachers_outputs_before_its_update() -> None:
    config = to_config(compose_config(["method=online_kd", "method.interval=0", *TINY]))
    method, data = build_method_for(config, epochs=1)
    batch = next(data.train.epoch(0))
    with torch.no_grad():
        before = method.teacher(batch.images)
    seen = {}
    original = method._student_step

    def spy(b, logits, features):
        seen["logits"] = logits
        return original(b, logits, features)

    method._student_step = spy
    method.train_step(batch, 0)
    assert torch.allclose(seen["logits"], before, atol=1e-6)
    assert method.counters()["teacher_lead_max"] == 0 and len(method.queue) == 0


def test_replay_memory_is_indices_not_images() -> None:
    config = to_config(compose_config(["method=online_kd", "method.interval=2", *TINY]))  # one epoch: all kept
    method, data = build_method_for(config, epochs=1)
    train_epochs(method, data, epochs=1)
    batches = data.train.steps_per_epoch
    assert method.queue.peak_nbytes == len(data.train) * 4 + 16 * batches
    image_bytes = len(data.train) * math.prod(data.image_shape) * 4
    assert method.queue.peak_nbytes * 10 < image_bytes


def test_replay_benchmark_prints_the_memory_line() -> None:
    import re
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "spacing.bench", "replay", "--images", "5000", "--intervals", "1.5", "4"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    match = re.fullmatch(r"replay memory at s=4: (\d+) bytes \((\d+)x less than storing images\)", last)
    assert match, last
    kept = 4 * 40 + 1  # S = 4 epochs x ceil(5000 / 128) steps; lagged keeps S + 1 batches at the peak
    assert kept * (16 + 4 * 8) <= int(match.group(1)) <= kept * (16 + 4 * 128)  # int32 indices + seed/step
    assert int(match.group(2)) > 1000


def test_self_kd_reports_each_exits_own_loss_term() -> None:
    config = to_config(compose_config(["method=self_kd", "method.interval=0", *TINY]))
    method, data = build_method_for(config)
    batch = next(data.train.epoch(0))
    with torch.no_grad():
        logits, features = method.net.exits(batch.images)
        terms = [float(t) for t in exit_losses(logits, features, batch.labels, config.method, method.net.feature_adapters)]
    stats = method.train_step(batch, 0)
    reported = [stats[f"exit{i + 1}"].summary()[0] for i in range(len(terms))]
    assert reported == pytest.approx(terms, rel=1e-5)
    assert terms[-1] == pytest.approx(float(torch.nn.functional.cross_entropy(logits[-1], batch.labels)), rel=1e-6)
