"""What a user can get wrong ends in one sentence and the right exit code, never a traceback, and never
a completed record: bad overrides and values, output dirs that cannot be written, broken sweep files,
a SLURM launcher without SLURM, a full disk, Ctrl-C. A bug keeps its traceback (exit code 1)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.helpers import ROOT

UNWRITABLE = "/sys/spacing-test"
"""A path nobody may create, not even root (sysfs)."""

CASES = {
    "unknown_key": (
        ["trainer.epoch=3"],
        "unknown key 'trainer.epoch'; valid keys under trainer: batch_size, channels_last, compile, device, epochs,",
    ),
    "appended_unknown_key": (["+trainer.foo=1"], "unknown key 'trainer.foo'; valid keys under trainer:"),
    "wrong_type": (["trainer.epochs=abc"], "invalid value for 'trainer.epochs': Value 'abc' of type 'str' could not"),
    "out_of_range": (["method.interval=-1"], "method.interval must be >= 0 epochs (0 = massed, inf = offline KD); got -1.0."),
    "unknown_option": (["dataset=cifar1000"], "unknown dataset 'cifar1000'; valid choices for dataset: "),
    "bad_schedule": (["method.schedule=sometimes"], "method.schedule must be one of periodic, random; got 'sometimes'."),
    "no_gpu": (["trainer.device=cuda"], "no CUDA GPU is visible; use trainer.device=cpu (or auto)."),
    "bad_val_fraction": (["dataset.val_fraction=1.5"], "dataset.val_fraction must be in [0, 1)"),
    "negative_seed": (["seed=-1"], "seed must be an integer in [0, 4294967295]; got -1."),
    "huge_interval": (["method=ema", "method.interval=1e308"], "method.interval must be at most 1e+06 epochs, or inf (offline KD); got 1e+308."),
    "infinite_lr": (["trainer.lr=inf"], "trainer.lr must be a finite number > 0; got inf."),
    "infinite_weight_decay": (["trainer.weight_decay=inf"], "trainer.weight_decay must be a finite number >= 0; got inf."),
    "negative_milestone": (["trainer.milestones=[-5,10]"], "trainer.milestones must be epochs >= 1; got [-5, 10]."),
    "root_is_a_file": (["dataset=cifar10", "dataset.root={base}/a_file"], "dataset.root {base}/a_file is a file, not a folder;"),
    "unwritable_run_dir": ([f"hydra.run.dir={UNWRITABLE}/run"], f"hydra.run.dir={UNWRITABLE}/run "),
    "run_dir_through_a_file": (["hydra.run.dir={base}/a_file/run"], "runs through a file, not a folder"),
}
NOTHING_RECORDED = ("unwritable_run_dir", "run_dir_through_a_file")
"""Refused before Hydra made the run dir."""


def cli_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **extra}
    env.pop("HYDRA_FULL_ERROR", None)
    return env


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the cases write, with a file where some of them expect a folder."""
    path = tmp_path_factory.mktemp("cli")
    (path / "a_file").write_text("not a folder")
    return path


@pytest.fixture(scope="module")
def outcomes(base: Path) -> dict[str, tuple[subprocess.CompletedProcess[str], Path]]:
    """Run every case as `python run.py ...`, two at a time (process start-up dominates)."""

    def launch(name: str) -> tuple[subprocess.CompletedProcess[str], Path]:
        out = base / name
        args = [arg.format(base=base) for arg in CASES[name][0]]
        proc = subprocess.run(
            [sys.executable, str(ROOT / "run.py"), f"hydra.run.dir={out}", "trainer.epochs=1", *args],
            capture_output=True, text=True, timeout=300, env=cli_env(),
        )
        return proc, out

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(CASES, pool.map(launch, CASES), strict=True))


def assert_one_sentence(proc: subprocess.CompletedProcess[str], expected: str, code: int = 2) -> str:
    assert proc.returncode == code, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr + proc.stdout
    error_lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1, proc.stderr
    assert expected in error_lines[0], error_lines[0]
    return error_lines[0]


@pytest.mark.slow  # the cases together take ~45 s on 2 busy cores (one process each)
@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_fails_with_one_clear_sentence(name: str, outcomes: dict, base: Path) -> None:
    proc, out = outcomes[name]
    assert_one_sentence(proc, CASES[name][1].format(base=base))
    record = out / "result.json"
    assert not record.exists() or json.loads(record.read_text())["status"] == "failed"
    if name in NOTHING_RECORDED:
        assert not out.exists()


@pytest.mark.slow
def test_unknown_option_lists_every_valid_choice(outcomes: dict) -> None:
    proc, _ = outcomes["unknown_option"]
    listed = proc.stderr.split("valid choices for dataset: ")[1].rstrip(".\n").split(", ")
    assert set(listed) == {p.stem for p in (ROOT / "conf" / "dataset").glob("*.yaml")}


@pytest.mark.slow
def test_value_errors_are_found_before_anything_is_written(outcomes: dict) -> None:
    _, out = outcomes["out_of_range"]
    assert not out.exists()  # checked before Hydra creates the run dir: bad input writes nothing


def multirun(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "run.py"), "-m", *args], cwd=cwd, env=env or cli_env(),
                          capture_output=True, text=True, timeout=300)


def test_unwritable_sweep_dir_is_one_sentence(tmp_path: Path) -> None:
    proc = multirun("seed=0,1", f"hydra.sweep.dir={UNWRITABLE}/sweep", cwd=tmp_path)
    assert_one_sentence(proc, f"hydra.sweep.dir={UNWRITABLE}/sweep ")
    assert "choose another hydra.sweep.dir" in proc.stderr


def sweep_file(tmp_path: Path, name: str, text: str) -> Path:
    """A sweep file in a config dir of its own (``--config-dir``), selected with ``+sweep=NAME``."""
    path = tmp_path / "extra" / "sweep" / f"{name}.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(text)
    return path


def test_sweep_file_with_a_yaml_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    path = sweep_file(tmp_path, "broken", "# @package _global_\ntrainer:\n  epochs: [3\nseed: 1\n")
    proc = multirun("+sweep=broken", f"--config-dir={tmp_path / 'extra'}", cwd=tmp_path)
    line = assert_one_sentence(proc, "is not valid YAML")
    assert f"{path} line " in line or f"{path.relative_to(tmp_path)} line " in line


def test_misspelled_key_in_a_sweep_file_names_the_key_and_the_file(tmp_path: Path) -> None:
    sweep_file(tmp_path, "typo", "# @package _global_\ntrainer:\n  epoch: 3\nhydra:\n  sweeper:\n    params:\n      seed: 0,1\n")
    proc = multirun("+sweep=typo", f"--config-dir={tmp_path / 'extra'}", cwd=tmp_path)
    line = assert_one_sentence(proc, "unknown key 'trainer.epoch' in ")
    assert "typo.yaml; valid keys under trainer: batch_size," in line


def test_slurm_launcher_without_sbatch_is_one_sentence(tmp_path: Path) -> None:
    bin_dir = Path(sys.executable).parent  # python alone on PATH: no sbatch
    proc = multirun("seed=0,1", "hydra/launcher=slurm", cwd=tmp_path, env=cli_env(PATH=str(bin_dir)))
    assert_one_sentence(proc, "hydra/launcher=slurm submits with sbatch, which is not on PATH here;")
    assert not (tmp_path / "multirun").exists()


def patched_run(tmp_path: Path, raise_: str) -> subprocess.CompletedProcess[str]:
    """`python run.py` on synthetic data with the runner's run_cell() replaced by one that raises `raise_`."""
    code = (
        "import errno, os, sys\n"
        "import spacing.runner\n"
        f"def run_cell(*args, **kwargs):\n    raise {raise_}\n"
        "spacing.runner.run_cell = run_cell\n"
        "from spacing.cli import run_command\n"
        f"sys.exit(run_command(['dataset=synthetic', 'hydra.run.dir={tmp_path / 'run'}']))\n"
    )
    return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=300)


def test_a_full_disk_is_one_sentence_that_says_where_and_how_to_resume(tmp_path: Path) -> None:
    proc = patched_run(tmp_path, "OSError(errno.ENOSPC, 'No space left on device', 'run/checkpoint.pt')")
    assert_one_sentence(proc, "the disk holding run is full (run/checkpoint.pt); free space and run the same command again "
                              "to resume from epoch 0.")


def test_a_bug_keeps_its_traceback_and_hydra_full_error_is_left_to_the_user(tmp_path: Path) -> None:
    proc = patched_run(tmp_path, "RuntimeError('a bug; HYDRA_FULL_ERROR=' + str(os.environ.get('HYDRA_FULL_ERROR')))")
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr
    assert "RuntimeError: a bug; HYDRA_FULL_ERROR=None" in proc.stderr


@pytest.mark.slow
def test_ctrl_c_says_the_epoch_and_the_same_command_resumes(tmp_path: Path) -> None:
    args = [sys.executable, str(ROOT / "run.py"), "dataset=synthetic", "dataset.train_size=4096", "model.width=8",
            "trainer.device=cpu", "trainer.epochs=40", f"hydra.run.dir={tmp_path / 'run'}"]
    history = tmp_path / "run" / "history.csv"
    # SIGINT's default action in the child, as in a terminal: a shell starts background jobs (a CI
    # script run with &, say) with SIGINT ignored, and Python then never raises KeyboardInterrupt.
    proc = subprocess.Popen(args, cwd=tmp_path, env=cli_env(OMP_NUM_THREADS="1"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 180
        while not (history.exists() and len(history.read_text().splitlines()) >= 3) and time.monotonic() < deadline:
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    epochs = int(json.loads((tmp_path / "run" / "result.json").read_text())["epochs_completed"])
    assert proc.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    assert stderr.strip().splitlines()[-1] == (
        f"error: interrupted at epoch {epochs} (run); run the same command again to resume."
    )
    again = subprocess.run(args, cwd=tmp_path, env=cli_env(OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"at epoch {epochs}" in (tmp_path / "run" / "run.log").read_text().split("resumed from ")[1].splitlines()[0]


def test_the_write_check_survives_a_launch_of_the_same_grid_removing_the_folder_it_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two launches of one grid check its new sweep dir at once; each removes the folder it made after its check,
    so one may find the folder gone between making it and writing in it. That is no storage problem."""
    import tempfile

    from spacing.cli import probe_writable

    sweep = tmp_path / "grid" / "sweep"
    real_mkstemp = tempfile.mkstemp
    removals = []

    def other_launch_removes_it_first(*args, **kwargs):
        if not removals:
            removals.append(sweep)
            sweep.rmdir()  # the other launch's clean-up, between this launch's mkdir and its file
        return real_mkstemp(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", other_launch_removes_it_first)
    probe_writable(sweep, "hydra.sweep.dir")
    assert removals == [sweep] and not (tmp_path / "grid").exists()  # checked, and its own folders removed again
