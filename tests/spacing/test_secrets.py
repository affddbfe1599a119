"""Records carry no secrets: with credentials in the environment, no file a sweep writes holds their values.

The run record, run.log, Hydra's .hydra/, trackers.json, the launch records and the trackers' offline
files (TensorBoard events, a W&B offline run, the MLflow store) are all read byte for byte. Nothing in
the harness records the environment: a record names what it keeps (config, versions, commit, device,
the SLURM job's ids), so this test guards that no one adds an environment dump.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.helpers import FAST, run_cli

SECRETS = {
    "WANDB_API_KEY": "5ecret0wandb0key0000000000000000000000042",
    "MLFLOW_TRACKING_USERNAME": "5ecret-mlflow-user",
    "MLFLOW_TRACKING_PASSWORD": "5ecret-mlflow-password",
    "MLFLOW_TRACKING_TOKEN": "5ecret-mlflow-token",
    "AWS_ACCESS_KEY_ID": "5ECRETAWSKEYID",
    "AWS_SECRET_ACCESS_KEY": "5ecret/aws+secret/access+key",
    "AWS_SESSION_TOKEN": "5ecret-aws-session-token",
    "AZURE_STORAGE_KEY": "5ecret-azure-storage-key",
    "HF_TOKEN": "hf_5ecretHuggingFaceToken",
    "GITHUB_TOKEN": "ghp_5ecretGithubToken",
}
TRACKERS = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}
"""logger option -> the package it needs."""


@pytest.mark.slow
def test_no_file_a_sweep_writes_holds_a_credential_from_the_environment(tmp_path: Path, monkeypatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    trackers = [name for name, package in TRACKERS.items() if importlib.util.find_spec(package) is not None]
    sweep = tmp_path / "sweep"
    selected = f"logger=[{','.join(trackers)}]" if trackers else "logger=none"
    proc = run_cli("-m", *FAST, "trainer.epochs=2", "trainer.threads=1", "seed=0", selected, f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, proc.stderr[-3000:]

    files = [path for path in sweep.rglob("*") if path.is_file()]
    names = {path.name for path in files}
    assert {"result.json", "run.log", "config.yaml", "hydra.yaml", "overrides.yaml", "multirun.yaml"} <= names
    if trackers:
        assert "trackers.json" in names
    if "tensorboard" in trackers:
        assert any(name.startswith("events.out.tfevents") for name in names)
    if "wandb" in trackers:
        assert any(name.endswith(".wandb") for name in names)  # the offline run's data
    if "mlflow" in trackers:
        assert "mlflow.db" in names
    leaks = [
        f"{path.relative_to(sweep)} holds ${name}"
        for path in files
        for name, value in SECRETS.items()
        if value.encode() in path.read_bytes()
    ]
    assert leaks == []
    missing = sorted(set(TRACKERS) - set(trackers))
    if missing:
        pytest.skip(f"the run record is clean; not checked: the files of {', '.join(missing)} (package not importable)")
