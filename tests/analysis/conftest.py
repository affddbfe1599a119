"""Fixtures for the analysis tests: record sets with known values (tests.helpers writes them).

The ``sweep`` fixture is a small EMA grid (decay 0.9 / 0.99 x interval 0 / 0.5 / 1 x seeds 0-2)
plus baseline and random-schedule cells, with one failed run, one missing seed, one corrupt file
and one Hydra job directory that never wrote a record. Every accuracy is
``BASE[cell] + SEED_OFFSET[seed]``, so means, sds and gains can be written down by hand.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import Sweep, make_record, make_sweep, write_run


@pytest.fixture
def sweep(tmp_path: Path) -> Sweep:
    return make_sweep(tmp_path / "sweep")


@pytest.fixture(name="make_record")
def make_record_fixture() -> Callable[..., dict[str, Any]]:
    return make_record


@pytest.fixture(name="write_run")
def write_run_fixture() -> Callable[..., Path]:
    return write_run
