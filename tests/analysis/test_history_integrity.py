"""Analysis checks histories as strictly as records: a completed run whose history.csv disagrees with its
record (rows dropped, an impossible accuracy) is listed with the reason and left out of every mean."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from analysis import report
from spacing.contract import HISTORY_COLUMNS
from spacing.runner import run
from tests.helpers import FAST, compose_config


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three seeds of one baseline cell, two epochs each, as a run writes them."""
    root = tmp_path_factory.mktemp("sweep")
    for seed in range(3):
        run(compose_config([*FAST, "trainer.epochs=2", f"seed={seed}"]), root / f"seed{seed}")
    return root


def damaged(runs: Path, tmp_path: Path, change) -> Path:
    sweep = tmp_path / "sweep"
    shutil.copytree(runs, sweep)
    path = sweep / "seed1" / "history.csv"
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    with open(path, "w", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows(change(rows))
    return sweep


def problems(sweep: Path) -> dict[str, str | None]:
    runs = report.load([sweep], "final", None).runs
    return {Path(path).name: detail if isinstance(detail, str) else None
            for path, detail in zip(runs["path"], runs["problem_detail"], strict=True)}


def test_undamaged_histories_agree_with_their_records(runs: Path) -> None:
    assert set(problems(runs).values()) == {None}


def with_test_acc(rows: list[list[str]], value: str) -> list[list[str]]:
    rows[1][HISTORY_COLUMNS.index("test_acc")] = value
    return rows


@pytest.mark.parametrize(("change", "reason"), [
    (lambda rows: rows[:1] + rows[2:], "holds epochs 2-2 (1 rows) of target model, not 1-2"),
    (lambda rows: with_test_acc(rows, "1.7"), "holds impossible values at epoch 1 of target model"),
    (lambda rows: rows[:-1], "holds epochs 1-1 (1 rows) of target model, not 1-2"),
], ids=["a row dropped", "a test_acc of 1.7", "truncated"])
def test_a_history_that_disagrees_is_listed_and_left_out_of_the_means(runs: Path, tmp_path: Path, change, reason: str) -> None:
    sweep = damaged(runs, tmp_path, change)
    found = problems(sweep)
    assert found["seed0"] is None and found["seed2"] is None
    assert reason in str(found["seed1"])
    analysis = report.load([sweep], "final", None)
    curves = report.history_curves(analysis, [{"method": "baseline"}])
    assert set(curves["n"]) == {2}  # the damaged run is in no mean
    assert curves["mean"].max() <= 100.0
