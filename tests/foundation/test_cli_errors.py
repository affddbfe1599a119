"""Bad overrides end with one sentence naming the valid choices, exit code 2, no traceback, no completed record."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import ROOT

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
}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[subprocess.CompletedProcess[str], Path]]:
    """Run every case as `python run.py ...`, two at a time (process start-up dominates)."""
    base = tmp_path_factory.mktemp("cli")

    def launch(name: str) -> tuple[subprocess.CompletedProcess[str], Path]:
        out = base / name
        proc = subprocess.run(
            [sys.executable, str(ROOT / "run.py"), *CASES[name][0], f"hydra.run.dir={out}", "trainer.epochs=1"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        return proc, out

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(CASES, pool.map(launch, CASES)))


@pytest.mark.parametrize("name", list(CASES))
def test_bad_override_fails_with_one_clear_sentence(name: str, outcomes: dict) -> None:
    proc, out = outcomes[name]
    assert proc.returncode == 2, proc.stderr
    assert CASES[name][1] in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    error_lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1, proc.stderr
    record = out / "result.json"
    assert not record.exists() or json.loads(record.read_text())["status"] == "failed"


def test_unknown_option_lists_every_valid_choice(outcomes: dict) -> None:
    proc, _ = outcomes["unknown_option"]
    listed = proc.stderr.split("valid choices for dataset: ")[1].rstrip(".\n").split(", ")
    assert set(listed) == {p.stem for p in (ROOT / "conf" / "dataset").glob("*.yaml")}


def test_value_errors_found_at_run_time_are_recorded_as_failed(outcomes: dict) -> None:
    _, out = outcomes["out_of_range"]
    record = json.loads((out / "result.json").read_text())
    assert record["status"] == "failed"
    assert "method.interval must be >= 0" in record["error"]
