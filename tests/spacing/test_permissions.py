"""What a launch creates can be changed by its owner only, even under a permissive umask, unless the user asks.

A sweep dir is a trust boundary (submitit unpickles the job files in .submitit/): new run and sweep
dirs, and all in them, get no group or other write permission; ``+hydra.sweep.mode`` grants it, and a
group- or world-writable sweep dir gets one warning.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from spacing.errors import ConfigError
from spacing.permissions import guard_outputs, keep_private, sweep_mode
from tests.helpers import FAST, run_cli

PERMISSIVE = 0o002
"""A umask common on shared clusters (user private groups): new files group-writable."""
WARNING = "can be written by"


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    """This process (and what it starts) under PERMISSIVE; the umask before is restored after."""
    before = os.umask(PERMISSIVE)
    yield
    os.umask(before)


def writable_by_others(root: Path) -> list[str]:
    """Every path under `root` (and `root`) that its group or other users may write."""
    paths = [root, *root.rglob("*")]
    return [f"{stat.filemode(p.stat().st_mode)} {p}" for p in paths if p.stat().st_mode & (stat.S_IWGRP | stat.S_IWOTH)]


def master(**sweep: object) -> OmegaConf:
    return OmegaConf.create({"hydra": {"sweep": {"dir": "unused", **sweep}}})


def test_a_run_dir_and_all_in_it_are_the_owners_alone(tmp_path: Path, permissive_umask: None) -> None:
    out = tmp_path / "runs" / "one"
    proc = run_cli(*FAST, "trainer.threads=1", f"hydra.run.dir={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "result.json").exists() and (out / ".hydra").is_dir()
    assert writable_by_others(tmp_path / "runs") == []
    assert WARNING not in proc.stderr


def test_a_sweep_in_a_group_writable_dir_warns_once_and_creates_only_private_entries(tmp_path: Path, permissive_umask: None) -> None:
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    os.chmod(sweep, 0o775)
    proc = run_cli("-m", *FAST, "trainer.threads=1", "seed=0,1", f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count(WARNING) == 1
    assert f"the sweep dir {sweep} can be written by its group" in proc.stderr
    assert len(list(sweep.glob("*/result.json"))) == 2 and (sweep / ".launches").is_dir()
    assert writable_by_others(sweep) == [f"drwxrwxr-x {sweep}"]  # the dir as it was; all it now holds is private


def test_keep_private_takes_group_and_other_write_out_of_the_umask(tmp_path: Path, permissive_umask: None) -> None:
    keep_private()
    (tmp_path / "private").mkdir()
    assert stat.S_IMODE((tmp_path / "private").stat().st_mode) == 0o755


def test_a_granted_mode_leaves_group_write_to_the_users_umask(tmp_path: Path, permissive_umask: None, capsys) -> None:
    guard_outputs(master(dir=str(tmp_path / "sweep"), mode=775), multirun=True)
    (tmp_path / "sweep").mkdir()
    assert stat.S_IMODE((tmp_path / "sweep").stat().st_mode) == 0o775
    assert capsys.readouterr().err.count(WARNING) == 1


def test_a_stricter_umask_of_the_user_stays(tmp_path: Path) -> None:
    before = os.umask(0o077)
    try:
        guard_outputs(master(dir=str(tmp_path / "sweep"), mode=775), multirun=True)
        (tmp_path / "sweep").mkdir()
    finally:
        os.umask(before)
    assert stat.S_IMODE((tmp_path / "sweep").stat().st_mode) == 0o700


def test_sweep_mode_is_read_as_octal_and_a_bad_one_is_one_sentence() -> None:
    assert sweep_mode(master()) is None
    assert sweep_mode(master(mode=775)) == 0o775
    assert sweep_mode(master(mode="0750")) == 0o750
    with pytest.raises(ConfigError, match=r"^hydra.sweep.mode must be permission bits in octal, like 755; got 'rwx'\.$"):
        sweep_mode(master(mode="rwx"))
