"""A finished cell whose files went bad: a result.json that is not a record, a history.csv that disagrees with it.

The same command then says what is wrong (a warning in the run's log) and trains the cell again,
ending with the record and history an undamaged run has; nothing is skipped on a damaged history.
"""

from __future__ import annotations

import csv
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from spacing.contract import HISTORY_COLUMNS, history_problem
from spacing.errors import ConfigError
from spacing.record import read_record
from spacing.runner import run
from tests.helpers import FAST, compose_config
from tests.spacing.test_runner_damaged_files import history, record

OVERRIDES = ("trainer.epochs=2",)


def config(*extra: str):
    return compose_config([*FAST, *OVERRIDES, *extra])


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("full")
    run(config(), out)
    return out


def rewrite_history(out: Path, change: Callable[[list[list[str]]], list[list[str]]]) -> None:
    with open(out / "history.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    with open(out / "history.csv", "w", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows(change(rows))


def set_cell(rows: list[list[str]], row: int, column: str, value: str) -> list[list[str]]:
    rows[row][HISTORY_COLUMNS.index(column)] = value
    return rows


DAMAGED_RECORDS = {
    "empty": "",
    "truncated": '{"status": "completed", "config": {',
    "garbage": "\x00\x01 not json",
    "a list": "[]",
    "a string": '"x"',
    "config not an object": '{"status": "completed", "config": 5}',
    "no config": '{"status": "completed"}',
}


@pytest.mark.parametrize("content", DAMAGED_RECORDS.values(), ids=DAMAGED_RECORDS.keys())
def test_a_result_json_that_is_not_a_record_is_said_and_the_cell_trains_again(
    content: str, full: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "cell"
    shutil.copytree(full, out)
    (out / "result.json").write_text(content)
    assert read_record(out)[0] is None and "result.json" in str(read_record(out)[1])
    with caplog.at_level(logging.WARNING, logger="spacing.runner"):
        run(config(), out)
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(f"{out / 'result.json'} is not" in message and "trains again" in message for message in said), said
    assert record(out)["status"] == "completed" and record(out)["metrics"] == record(full)["metrics"]
    assert history(out) == history(full)


HISTORY_DAMAGE = {
    "missing": lambda out: (out / "history.csv").unlink(),
    "empty": lambda out: (out / "history.csv").write_text(""),
    "truncated mid-row": lambda out: (out / "history.csv").write_text((out / "history.csv").read_text()[:-40]),
    "a row dropped": lambda out: rewrite_history(out, lambda rows: rows[:1] + rows[2:]),
    "an accuracy of 1.7": lambda out: rewrite_history(out, lambda rows: set_cell(rows, 1, "test_acc", "1.7")),
    "a changed final accuracy": lambda out: rewrite_history(out, lambda rows: set_cell(rows, len(rows) - 1, "test_acc", "0.001")),
    "another header": lambda out: rewrite_history(out, lambda rows: [["epoch", "target"], *[r[:2] for r in rows[1:]]]),
}


@pytest.mark.parametrize("damage", HISTORY_DAMAGE.values(), ids=HISTORY_DAMAGE.keys())
def test_a_completed_cell_whose_history_disagrees_with_its_record_trains_again(
    damage: Callable[[Path], None], full: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "cell"
    shutil.copytree(full, out)
    damage(out)
    problem = history_problem(out, record(out))
    assert problem is not None and str(out / "history.csv") in problem
    with caplog.at_level(logging.WARNING, logger="spacing.runner"):
        run(config(), out)
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(problem in message and "trains again" in message for message in said), said
    assert history_problem(out, record(out)) is None
    assert record(out)["metrics"] == record(full)["metrics"] and history(out) == history(full)


def test_an_undamaged_completed_cell_is_skipped_and_its_history_agrees(full: Path, tmp_path: Path) -> None:
    out = tmp_path / "cell"
    shutil.copytree(full, out)
    assert history_problem(out, record(out)) is None
    before = (out / "history.csv").read_bytes(), (out / "result.json").read_bytes()
    run(config(), out)
    assert ((out / "history.csv").read_bytes(), (out / "result.json").read_bytes()) == before


def test_a_damaged_history_of_another_configs_run_is_still_refused(full: Path, tmp_path: Path) -> None:
    out = tmp_path / "cell"
    shutil.copytree(full, out)
    (out / "history.csv").unlink()
    with pytest.raises(ConfigError, match="already holds a completed run of a different config"):
        run(config("trainer.lr=0.5"), out)
