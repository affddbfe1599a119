"""Bad input: exit 2, one sentence that names the fix, no traceback, and nothing written.

(A grid with a bad cell adds one line: that nothing was launched, and how many cells are invalid.)

Each case is a command line a user could type, run as ``python run.py ARGS`` runs it (in this
process, from an empty dir): nothing may be created there, not a run dir, not ``.hydra/``, not a
``run.log``, not a sweep dir.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

from spacing.cli import run_command

CASES: list[tuple[tuple[str, ...], str]] = [
    (("trainer.lr=inf",), "trainer.lr must be a finite number > 0; got inf."),
    (("seed=-1",), "seed must be an integer in [0, 4294967295]; got -1."),
    (("trainer.epochs=0",), "trainer.epochs"),
    (("method=ema", "method.decay=1.5"), "method.decay"),
    (("trainer.batch_size=0",), "trainer.batch_size"),
    (("dataset.val_fraction=1.0",), "dataset.val_fraction must be in [0, 1) (0 = no validation split); got 1.0."),
    (("trainer.threads=0",), "trainer.threads must be >= 1 (or null); got 0."),
    (("trainer.threads=-2",), "trainer.threads must be >= 1 (or null); got -2."),
    (("dataset.split_seed=-1",), "dataset.split_seed must be an integer in [0, 4294967295]; got -1."),
    (("method.interval=1e308",), "method.interval must be at most"),
    (("dataset.root=AFILE",), "dataset.root AFILE is a file, not a folder; point dataset.root at the folder that holds the digits files."),
    (("trainer.nosuch=1",), "unknown key 'trainer.nosuch'; valid keys under trainer: batch_size,"),
    (("method=nosuch",), "unknown method 'nosuch'; valid choices for method:"),
    (("-m", "seed=0,-1"), "seed must be an integer in [0, 4294967295]; got -1."),
    (("-m", "hydra.sweeper.controls=maybe"), "hydra.sweeper.controls is true or false; got 'maybe'."),
    (("-m", "hydra.sweeper.controls=7"), "hydra.sweeper.controls is true or false; got 7."),
    (("-m", "hydra.sweeper.fuse=maybe"), "hydra.sweeper.fuse is true or false; got 'maybe'."),
    (("-m", "hydra/launcher=local", "hydra.launcher.n_jobs=0"), "hydra.launcher.n_jobs is the number of cells run at once (> 0;"),
    (("-m", "hydra.sweeper.nosuch=1"),
     "unknown key 'hydra.sweeper.nosuch'; valid keys under hydra.sweeper: _target_, controls, fuse, max_batch_size, params."),
    (("-m", "hydra/launcher=slurm", "seed=0,1"), "hydra/launcher=slurm submits with sbatch, which is not on PATH here;"),
]
GPU_CASES = [
    (("trainer.device=cuda",), "trainer.device=cuda was requested but no CUDA GPU is visible; use trainer.device=cpu (or auto)."),
    (("-m", "trainer.device=cuda", "seed=0,1"), "trainer.device=cuda was requested but no CUDA GPU is visible;"),
]
TRACKER_CASES = [(("logger=wandb",), "logger 'wandb' needs the wandb package, which is not installed;")]


def has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def check(args: tuple[str, ...], sentence: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "afile").write_text("not a folder")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))  # no sbatch here
    monkeypatch.setattr(sys, "argv", ["run.py"])
    args = tuple(arg.replace("AFILE", str(tmp_path / "afile")) for arg in args)
    try:
        code = run_command([*args, "trainer.epochs=1" if "trainer.epochs=0" not in args else "seed=0"])
    except SystemExit as exc:  # a grid's bad cell ends the launch from inside Hydra, as in a real process
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert lines[0].startswith("error: "), err
    assert lines[1:] in ([], ["nothing was launched: 1 of 2 cells are invalid (spacing plan ARGS lists the cells)."]), err
    assert sentence.replace("AFILE", str(tmp_path / "afile")) in err
    assert os.listdir(work) == [], "bad input wrote files"


@pytest.mark.parametrize(("args", "sentence"), CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_input_is_one_sentence_and_writes_nothing(args, sentence, tmp_path, monkeypatch, capsys) -> None:
    check(args, sentence, tmp_path, monkeypatch, capsys)


@pytest.mark.skipif(has_gpu(), reason="this machine has a GPU: trainer.device=cuda is good input here")
@pytest.mark.parametrize(("args", "sentence"), GPU_CASES, ids=[" ".join(a) for a, _ in GPU_CASES])
def test_a_gpu_where_there_is_none_is_one_sentence_and_writes_nothing(args, sentence, tmp_path, monkeypatch, capsys) -> None:
    check(args, sentence, tmp_path, monkeypatch, capsys)


@pytest.mark.skipif(importlib.util.find_spec("wandb") is not None, reason="wandb is installed: logger=wandb is good input here")
@pytest.mark.parametrize(("args", "sentence"), TRACKER_CASES, ids=[" ".join(a) for a, _ in TRACKER_CASES])
def test_a_tracker_that_is_not_installed_is_one_sentence_and_writes_nothing(args, sentence, tmp_path, monkeypatch, capsys) -> None:
    check(args, sentence, tmp_path, monkeypatch, capsys)
