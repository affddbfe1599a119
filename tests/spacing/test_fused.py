"""Fused runs: a group's cells get the records of their separate runs, resume and skip as cells, and refuse bad groups."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

import spacing.fused
from spacing.checkpoint import Checkpoints, Resumable
from spacing.claim import RunningElsewhere
from spacing.contract import CHECKPOINT_FILE, CLAIM_FILE, PREVIOUS_CHECKPOINT_FILE
from spacing.errors import ConfigError
from spacing.fused import common_start, run_group
from spacing.methods import METHODS
from spacing.runner import run
from tests.helpers import compose_config

DIGITS = ("dataset=digits", "dataset.train_fraction=0.5", "model=small_cnn", "model.width=8", "trainer.batch_size=32", "trainer.device=cpu")
EMA_CELLS = [(f"method.interval={i}", f"method.decay={d}") for i in (0, 0.5, 1) for d in (0.9, 0.99)] + [
    ("method.interval=0.5", "method.decay=0.9", "method.control=matched")
]
KD_CELLS = [("method.interval=0",), ("method.interval=1",), ("method.interval=inf",)]
TIMING = ("seconds",)
"""history.csv's timing column: the only one a fused cell may differ in."""


def configs(method: str, cells: list[tuple[str, ...]], epochs: int = 2, *extra: str) -> list[Any]:
    return [compose_config([*DIGITS, f"method={method}", f"trainer.epochs={epochs}", *extra, *cell]) for cell in cells]


def history(cell: Path) -> list[dict[str, str]]:
    with open(cell / "history.csv", newline="") as handle:
        return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(handle)]


def numbers(cell: Path) -> tuple[Any, ...]:
    """What must be equal between a fused cell and its separate run: everything but timings, fused, dates and the claim."""
    record = json.loads((cell / "result.json").read_text())
    return (
        record["status"], record["metrics"], record["counters"], record["steps"], record["epochs_completed"],
        record["interval"], record["strength"], record["control"], record["config"], history(cell),
    )


def separate_and_fused(root: Path, method: str, cells: list[tuple[str, ...]]) -> tuple[list[Path], list[Path]]:
    separate = [root / "separate" / str(i) for i in range(len(cells))]
    fused = [root / "fused" / str(i) for i in range(len(cells))]
    for config, out_dir in zip(configs(method, cells), separate):
        run(config, out_dir)
    run_group(list(zip(configs(method, cells), fused)))
    return separate, fused


@pytest.mark.slow
def test_fused_ema_grid_with_a_control_equals_its_separate_runs(tmp_path: Path) -> None:
    separate, fused = separate_and_fused(tmp_path, "ema", EMA_CELLS)
    for alone, together in zip(separate, fused):
        assert numbers(together) == numbers(alone), together
        assert json.loads((alone / "result.json").read_text())["fused"] is None
    record = json.loads((fused[0] / "result.json").read_text())
    names = "\n".join(sorted(str(i) for i in range(len(EMA_CELLS))))
    assert record["fused"] == {
        "group": hashlib.sha256(names.encode()).hexdigest()[:12], "cells": 7, "cost_share": pytest.approx(1 / 7)
    }
    assert record["status"] == "completed" and not (fused[0] / CHECKPOINT_FILE).exists()
    assert json.loads((fused[-1] / "result.json").read_text())["control"]["kind"] == "matched_horizon"
    # one shadow per cell: spaced cells refresh fewer times than massed ones
    updates = [json.loads((cell / "result.json").read_text())["counters"]["ema_updates"] for cell in fused]
    assert updates[0] > updates[2] > updates[4] > 0


@pytest.mark.slow
def test_fused_kd_curve_massed_spaced_and_offline_equals_its_separate_runs(tmp_path: Path) -> None:
    separate, fused = separate_and_fused(tmp_path, "online_kd", KD_CELLS)
    for alone, together in zip(separate, fused):
        assert numbers(together) == numbers(alone), together
    offline = json.loads((fused[2] / "result.json").read_text())
    assert offline["epochs_completed"] == 4  # teacher phase (shared with the others) + student phase
    # The group's cost is its elapsed time, the offline cell's (it trains longest): the cells' priced
    # shares add up to it, so the offline cell's student phase, run alone, is all its own.
    records = [json.loads((cell / "result.json").read_text()) for cell in fused]
    priced = sum(record["wall_time_s"] * record["fused"]["cost_share"] for record in records)
    assert priced == pytest.approx(offline["wall_time_s"], rel=1e-3, abs=0.01)
    assert offline["fused"]["cost_share"] > 1 / 3
    teacher = [row["test_acc"] for row in history(fused[2]) if row["target"] == "teacher"]
    assert teacher[:2] == [row["test_acc"] for row in history(fused[0]) if row["target"] == "teacher"]


@pytest.mark.slow
def test_fused_kd_controls_share_their_own_teacher_and_equal_their_separate_runs(tmp_path: Path) -> None:
    # the matched-lead controls' teacher reads a stream derived from the seed alone, so one teacher serves them all
    controls = [("method.interval=0.5", "method.control=matched"), ("method.interval=1", "method.control=matched")]
    separate, fused = separate_and_fused(tmp_path, "online_kd", controls)
    for alone, together in zip(separate, fused):
        assert numbers(together) == numbers(alone), together
    records = [json.loads((cell / "result.json").read_text()) for cell in fused]
    assert [record["control"]["kind"] for record in records] == ["matched_lead"] * 2
    assert records[0]["fused"]["cells"] == 2


@pytest.mark.slow
def test_a_group_killed_between_two_cells_checkpoints_resumes_to_the_uninterrupted_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Killed while saving the second cell's epoch 2: the first stands at epoch 2, the second at 1; both go on from 1."""
    cells = [("method.interval=0", "method.decay=0.9"), ("method.interval=0.5", "method.decay=0.9")]
    whole = [tmp_path / "whole" / name for name in ("a", "b")]
    killed = [tmp_path / "killed" / name for name in ("a", "b")]
    run_group(list(zip(configs("ema", cells, 3), whole)))

    save = Checkpoints.save

    def save_then_die(self: Checkpoints, state: dict[str, Any], epoch: int) -> None:
        if self.out_dir == killed[1] and epoch == 2:
            raise KeyboardInterrupt("killed")
        save(self, state, epoch)

    monkeypatch.setattr(Checkpoints, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        run_group(list(zip(configs("ema", cells, 3), killed)))
    monkeypatch.setattr(Checkpoints, "save", save)
    assert [json.loads((cell / "result.json").read_text())["status"] for cell in killed] == ["running", "running"]  # as a kill leaves them
    assert (killed[0] / PREVIOUS_CHECKPOINT_FILE).exists()

    with caplog.at_level("INFO", logger="spacing.loop"):
        records = run_group(list(zip(configs("ema", cells, 3), killed)))
    resumed = [message for message in caplog.messages if message.startswith("resumed from")]
    assert resumed == [
        f"resumed from {killed[0] / PREVIOUS_CHECKPOINT_FILE} at epoch 1",  # back one epoch, to where the other stands
        f"resumed from {killed[1] / CHECKPOINT_FILE} at epoch 1",
    ]
    assert [record["status"] for record in records] == ["completed", "completed"]
    for done, resumed in zip(whole, killed):
        assert numbers(resumed) == numbers(done)


def test_a_completed_group_is_skipped_and_a_deleted_cell_alone_is_retrained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cells = [("method.interval=0", "method.decay=0.9"), ("method.interval=1", "method.decay=0.9"), ("method.interval=1", "method.decay=0.99")]
    dirs = [tmp_path / name for name in ("a", "b", "c")]
    first = run_group(list(zip(configs("ema", cells), dirs)))
    written = [(cell / "result.json").read_bytes() for cell in dirs]
    expected = numbers(dirs[1])

    def no_training(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a completed cell was built again")

    monkeypatch.setattr(spacing.fused, "build_run", no_training)
    assert run_group(list(zip(configs("ema", cells), dirs))) == first
    assert [(cell / "result.json").read_bytes() for cell in dirs] == written
    monkeypatch.undo()

    for path in dirs[1].iterdir():
        path.unlink()
    dirs[1].rmdir()
    records = run_group(list(zip(configs("ema", cells), dirs)))
    assert [(dirs[i] / "result.json").read_bytes() for i in (0, 2)] == [written[0], written[2]]  # untouched
    assert numbers(dirs[1]) == expected
    assert records[1]["fused"]["cells"] == 1 and records[1]["fused"]["cost_share"] == 1.0
    assert records[1]["fused"]["group"] == first[1]["fused"]["group"]


def test_a_group_of_one_cell_is_an_ordinary_run(tmp_path: Path) -> None:
    (record,) = run_group([(compose_config([*DIGITS, "method=ema", "trainer.epochs=1"]), tmp_path / "one")])
    assert record["status"] == "completed" and record["fused"] is None


@pytest.mark.parametrize(
    ("method", "cells", "named"),
    [
        ("ema", [("trainer.lr=0.01",), ("trainer.lr=0.02",)], "they differ in trainer.lr"),
        ("ema", [("method.buffers=recompute",), ("method.buffers=copy",)], "they differ in method.buffers"),
        ("online_kd", [("method.alpha=0.3",), ("method.alpha=0.5",)], "they differ in method.alpha"),
        ("ema", [("seed=0",), ("seed=1",)], "they differ in seed"),
        ("dropout", [("method.interval=0",), ("method.interval=1",)], "method=dropout cannot run fused"),
        ("self_kd", [("method.interval=0",), ("method.interval=1",)], "method=self_kd cannot run fused"),
        ("baseline", [("seed=0",), ("seed=0",)], "method=baseline cannot run fused"),
        ("online_kd", [("method.interval=0", "method.replay_teacher_bn=true"), ("method.interval=1", "method.replay_teacher_bn=true")],
         "method.replay_teacher_bn=true"),
    ],
)
def test_a_group_that_cannot_share_its_trajectory_is_refused_before_anything_is_written(
    tmp_path: Path, method: str, cells: list[tuple[str, ...]], named: str
) -> None:
    dirs = [tmp_path / str(i) for i in range(len(cells))]
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        run_group(list(zip(configs(method, cells, 1), dirs)))
    assert not any(cell.exists() for cell in dirs)


def test_a_cell_held_elsewhere_stops_the_group_and_releases_the_others(tmp_path: Path) -> None:
    dirs = [tmp_path / name for name in ("a", "b")]
    dirs[1].mkdir(parents=True)
    (dirs[1] / CLAIM_FILE).write_text(json.dumps({"host": "node-17", "pid": 4242, "started_at": "x", "token": "theirs"}))
    cells = [("method.interval=0",), ("method.interval=1",)]
    with pytest.raises(RunningElsewhere, match="node-17"):
        run_group(list(zip(configs("ema", cells, 1), dirs)))
    assert not (dirs[0] / CLAIM_FILE).exists() and not (dirs[0] / "result.json").exists()


@pytest.mark.parametrize("name", sorted(METHODS))
def test_a_method_fuses_exactly_when_it_declares_shared_targets_and_its_config_fusable_keys(name: str) -> None:
    method = METHODS[name]
    assert bool(method.shared_targets) == bool(method.config.fusable_keys)
    assert set(method.shared_targets) <= set(getattr(method, "targets", ())) and method.main_target not in method.shared_targets
    assert set(method.config.fusable_keys) <= {field.name for field in dataclasses.fields(method.config)}
    assert method.config.fusable_keys == {"ema": ("interval", "decay", "schedule", "control"),
                                          "online_kd": ("interval", "schedule")}.get(name, ())


@pytest.mark.slow
def test_a_group_whose_shared_model_diverges_records_every_cell_as_its_separate_run_does(tmp_path: Path) -> None:
    cells = [("method.interval=0",), ("method.interval=0.5",)]
    extra = ("trainer.lr=1e6", "trainer.log_every=1")
    for i, config in enumerate(configs("ema", cells, 2, *extra)):
        run(config, tmp_path / "separate" / str(i))
    records = run_group([(config, tmp_path / "fused" / str(i)) for i, config in enumerate(configs("ema", cells, 2, *extra))])
    for i, record in enumerate(records):
        alone = json.loads((tmp_path / "separate" / str(i) / "result.json").read_text())
        assert record["status"] == alone["status"] == "diverged"
        assert (record["error"], record["steps"], record["counters"]) == (alone["error"], alone["steps"], alone["counters"])


def test_cells_at_different_epochs_without_a_common_checkpoint_start_over_together(tmp_path: Path) -> None:
    def at(epoch: int, name: str) -> Resumable:
        return Resumable({"progress": {"epoch": epoch}}, tmp_path / name / CHECKPOINT_FILE)

    same = [at(2, "a"), at(2, "b")]
    assert common_start(same) == same
    apart = common_start([at(2, "a"), at(1, "b"), Resumable()])  # no checkpoint.prev.pt behind a's: nothing in common
    assert [start.state for start in apart] == [None, None, None]
