"""Online KD's matched-lead control: the lead of the spaced cell kept, the spacing removed.

The spaced (lagged) student distils each batch S teacher steps after the teacher learned that very
batch. The control (``method.control=matched``) is massed online KD whose teacher is S steps ahead on
its own stream of the same training data: the lead is the same, the batch is not one the teacher
learned S steps before.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from spacing.config import to_config
from spacing.errors import ConfigError
from spacing.methods.online_kd import OnlineKD
from spacing.runner import run
from tests.helpers import TINY, build_method_for, compose_config, history_rows, train_epochs

SPACED = ("method=online_kd", "method.interval=0.5", "trainer.epochs=2", "trainer.threads=1", *TINY)
"""A lagged spaced cell on the tiny synthetic data: 12 steps per epoch, S = 6."""


def build(*overrides: str) -> tuple[OnlineKD, object]:
    method, data = build_method_for(to_config(compose_config([*SPACED, *overrides])), epochs=2)
    assert isinstance(method, OnlineKD)
    return method, data


class Watch:
    """Records, per step of the teacher and of the student, what it trained on and the teacher's steps so far."""

    def __init__(self, method: OnlineKD) -> None:
        self.teacher_steps = 0
        self.teacher_batches: list[tuple[tuple[int, ...], int]] = []
        self.student: list[tuple[int, int]] = []  # (batch seed, teacher steps taken when it was distilled)
        teacher_step, student_step = method._teacher_step, method._student_step

        def watched_teacher(batch):
            self.teacher_batches.append((tuple(batch.indices.tolist()), batch.seed))
            self.teacher_steps += 1
            return teacher_step(batch)

        def watched_student(batch, logits, features):
            self.student.append((batch.seed, self.teacher_steps))
            return student_step(batch, logits, features)

        method._teacher_step = watched_teacher
        method._student_step = watched_student


def plan(data, epochs: int) -> list[tuple[tuple[int, ...], int]]:
    """The run's own stream: every batch's (indices, augmentation seed), in order."""
    return [(tuple(indices.tolist()), seed) for epoch in range(epochs) for indices, seed in data.train.plan(epoch)]


def comparable(record: dict) -> dict:
    """What a run trained and measured: everything but its identity, timing and config."""
    return {key: record[key] for key in ("metrics", "counters", "steps", "epochs_completed", "data")}


def test_the_control_is_massed_kd_with_the_spaced_cells_lead() -> None:
    method, data = build("method.control=matched")
    S = int(0.5 * data.train.steps_per_epoch)
    assert (method.cfg.interval, method.cfg.control, method.cfg.teacher_lead) == (0.0, "none", S)
    assert method.control() == {"kind": "matched_lead", "interval": 0.5, "strength": 0.3, "schedule": "periodic"}


def test_with_the_students_stream_the_control_trains_exactly_as_its_spaced_cell(make_config, tmp_path: Path) -> None:
    spaced = run(make_config(*SPACED), tmp_path / "spaced")
    control = run(make_config(*SPACED, "method.control=matched", "method.teacher_stream=student"), tmp_path / "control")
    assert comparable(control) == comparable(spaced)  # the same weights give the same accuracies, epoch by epoch
    without_seconds = [[{k: v for k, v in row.items() if k != "seconds"} for row in history_rows(tmp_path / cell)]
                       for cell in ("spaced", "control")]
    assert without_seconds[0] == without_seconds[1]
    assert (control["interval"], spaced["interval"]) == (0.0, 0.5)
    assert control["control"]["kind"] == "matched_lead" and spaced["control"] is None


def test_the_lead_is_s_teacher_steps_on_every_batch() -> None:
    method, data = build("method.control=matched", "method.distill_tail=false")
    watch = Watch(method)
    steps = train_epochs(method, data, epochs=2)
    S = int(0.5 * data.train.steps_per_epoch)
    student_seeds = [seed for _, seed in plan(data, 2)]
    assert [seed for seed, _ in watch.student] == student_seeds[: steps - S]  # the run's stream, in order, once
    # the student's k-th batch (1-based) is distilled with the teacher k + S steps into its training
    assert [taken - k for k, (_, taken) in enumerate(watch.student, start=1)] == [S] * (steps - S)
    counters = method.counters()
    assert counters["teacher_lead_min"] == counters["teacher_lead_max"] == S
    assert (counters["distill_steps"], counters["undistilled_batches"]) == (steps - S, S)


def test_the_tail_is_distilled_with_the_spaced_cells_leads() -> None:
    # as in the spaced cell, the last S batches are distilled after training from the final teacher
    method, data = build("method.control=matched")
    watch = Watch(method)
    steps = train_epochs(method, data, epochs=2)
    S = int(0.5 * data.train.steps_per_epoch)
    leads = [taken - k for k, (_, taken) in enumerate(watch.student, start=1)]
    assert leads == [S] * (steps - S) + list(range(S - 1, -1, -1))
    assert (method.counters()["teacher_lead_min"], method.counters()["teacher_lead_max"]) == (0, S)


def test_the_teacher_reads_its_own_order_of_the_same_training_data() -> None:
    method, data = build("method.control=matched")
    watch = Watch(method)
    steps = train_epochs(method, data, epochs=2)
    student = plan(data, 2)
    assert len(watch.teacher_batches) == steps
    assert all(taught != learned for taught, learned in zip(watch.teacher_batches, student))
    per_epoch = data.train.steps_per_epoch
    for epoch in range(2):
        images = [i for indices, _ in watch.teacher_batches[epoch * per_epoch:(epoch + 1) * per_epoch] for i in indices]
        assert sorted(images) == list(range(len(data.train)))  # every training image once per epoch
    again, _ = build("method.control=matched")
    second = Watch(again)
    train_epochs(again, data, epochs=2)
    assert second.teacher_batches == watch.teacher_batches  # derived from the run's seed: deterministic


def test_with_the_students_stream_the_teacher_learns_the_students_batches() -> None:
    method, data = build("method.control=matched", "method.teacher_stream=student")
    watch = Watch(method)
    train_epochs(method, data, epochs=2)
    assert watch.teacher_batches == plan(data, 2)


def test_a_control_of_another_seed_has_another_teacher_order() -> None:
    first, data = build("method.control=matched")
    other, _ = build("method.control=matched", "seed=1")
    assert not torch.equal(first.teacher_stream.batch(0).indices, other.teacher_stream.batch(0).indices)
    assert not torch.equal(first.teacher_stream.batch(0).indices, next(data.train.plan(0))[0])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("method.replay=rounds", "method.control=matched"), "set method.replay=lagged and method.schedule=periodic"),
        (("method.schedule=random", "method.control=matched"), "set method.replay=lagged and method.schedule=periodic"),
        (("method.teacher_lead=3",), "a spaced cell's lead is its interval"),
        (("method.teacher_lead=3", "method.control=matched"), "method.control=matched sets the lead itself"),
        (("method.teacher_stream=student",), "method.teacher_stream=student applies to a teacher ahead"),
        (("method.teacher_lead=-1", "method.interval=0"), "method.teacher_lead must be >= 0"),
    ],
)
def test_leads_that_cannot_be_held_are_refused_with_the_fix(overrides: tuple[str, ...], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        to_config(compose_config([*SPACED, *overrides]))
