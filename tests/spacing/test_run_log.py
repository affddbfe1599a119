"""Where log lines go: each cell's run.log gets its own lines (a fused group's cells too), epoch lines name
their cell, a sweep's cell keeps its terminal for warnings, and a launch line names a fused group's size."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import spacing.run_log
from spacing.fused import run_group
from spacing.loop import cell_labels
from spacing.run_log import EPOCH_SUMMARY, CellLogger, JobConsole, LaunchLines, OwnCell, cell_logs
from tests.helpers import compose_config

TINY_EMA = ("dataset=synthetic", "model=small_cnn", "model.width=4", "trainer.device=cpu", "trainer.epochs=2",
            "method=ema", "dataset.val_fraction=0.2")


@pytest.fixture
def job_log(tmp_path: Path) -> Iterator[Path]:
    """A job's log file as Hydra's job logging makes it: a root file handler in the job's dir, taking its own cell's lines."""
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    handler = logging.FileHandler(job_dir / "run.log")
    handler.addFilter(OwnCell(str(job_dir)))
    handler.setFormatter(logging.Formatter("[%(name)s] - %(message)s"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield job_dir
    root.removeHandler(handler)
    root.setLevel(level)
    handler.close()


def test_each_cell_log_takes_its_own_lines_and_those_about_no_cell(job_log: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    log = logging.getLogger("spacing.test")
    with cell_logs([job_log, other]):
        CellLogger(log, job_log).info("about the job's cell")
        CellLogger(log, other).info("about the other cell")
        log.info("about the group")
    log.info("after the group")
    assert (job_log / "run.log").read_text().splitlines() == [
        "[spacing.test] - about the job's cell", "[spacing.test] - about the group", "[spacing.test] - after the group"]
    assert (other / "run.log").read_text().splitlines() == [
        "[spacing.test] - about the other cell", "[spacing.test] - about the group"]  # the copy ends with the group


def test_a_fused_groups_cells_each_log_their_epochs_by_name(job_log: Path, tmp_path: Path) -> None:
    cells = [(compose_config([*TINY_EMA, *cell]), tmp_path / name) for name, cell in (
        ("job", ("method.interval=0",)),  # the job's dir: its log is the job's
        ("spaced", ("method.interval=0.5",)),
        ("control", ("method.interval=0.5", "method.control=matched")),
    )]
    run_group(cells)
    for _, cell_dir in cells:
        text = (cell_dir / "run.log").read_text()
        own = re.findall(r" - epoch (\d)/2 \| (\S+) \| model: loss \S+ val \S+ test \S+ \| ema: val \S+ test \S+$", text,
                         re.MULTILINE)
        assert own == [("1", cell_dir.name), ("2", cell_dir.name)], text  # its own epochs, each naming it
        group = re.findall(r" - fused group of 3 cells, epoch (\d)/2 \| model: loss \S+ val \S+ test \S+ \| "
                           r"ema test: job \S+, spaced \S+, control \S+$", text, re.MULTILINE)
        assert group == ["1", "2"], text  # one line per epoch for the group, a column per cell


def test_cells_are_labelled_by_what_sets_them_apart() -> None:
    names = ["ema-i0-seed3-1a2b3c4d5e", "ema-i0.5-seed3-2b3c4d5e6f", "ema-i0.5-control-seed3-3c4d5e6f7a"]
    assert cell_labels(names) == ["i0", "i0.5", "i0.5-control"]
    assert cell_labels(["ema-i0-seed0-aaaa", "ema-i0-seed0-bbbb"]) == ["aaaa", "bbbb"]  # differ only in the hash


def record(level: int, summary: bool = False) -> logging.LogRecord:
    made = logging.LogRecord("spacing.loop", level, __file__, 1, "a line", (), None)
    if summary:
        setattr(made, EPOCH_SUMMARY, True)
    return made


def test_a_sweeps_cell_shows_warnings_on_the_terminal_and_a_slurm_task_its_epochs(monkeypatch: pytest.MonkeyPatch) -> None:
    console = JobConsole()
    monkeypatch.delenv("SUBMITIT_EXECUTOR", raising=False)
    monkeypatch.setattr(spacing.run_log, "in_sweep", lambda: False)
    assert console.filter(record(logging.INFO))  # a single run shows everything
    monkeypatch.setattr(spacing.run_log, "in_sweep", lambda: True)
    assert console.filter(record(logging.WARNING))
    assert not console.filter(record(logging.INFO))
    assert not console.filter(record(logging.INFO, summary=True))  # the launching terminal draws the sweep's view
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "slurm")  # a SLURM task: its output is a log file of its own
    assert console.filter(record(logging.INFO, summary=True))
    assert not console.filter(record(logging.INFO))


def test_a_launch_line_names_the_size_of_a_fused_group_instead_of_its_cells() -> None:
    cells = "[{interval:0.0,control:none},{interval:0.25,control:none},{interval:0.25,control:matched}]"
    line = logging.LogRecord("hydra", logging.INFO, __file__, 1, "\t#%d : %s", (3, f"seed=3 +sweep=demo fused_cells={cells}"), None)
    assert LaunchLines().filter(line)
    assert line.getMessage() == "\t#3 : seed=3 +sweep=demo fused_cells=[3 cells]"
    plain = logging.LogRecord("hydra", logging.INFO, __file__, 1, "\t#0 : seed=0 method=ema", (), None)
    assert LaunchLines().filter(plain) and plain.getMessage() == "\t#0 : seed=0 method=ema"
