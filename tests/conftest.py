"""Fixtures every test folder may use: configs composed as the CLI composes them, and a SLURM cluster.

Helpers that tests import by name live in tests/helpers.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable

import pytest
from omegaconf import DictConfig

from tests.helpers import FAST, compose_config


@pytest.fixture(autouse=True)
def _keep_torch_thread_count():  # type: ignore[no-untyped-def]
    """Restore torch's CPU thread count after each test: code under test may set it (benchmarks,
    the CLI), and CPU numbers are reproducible only at one thread count."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def make_config() -> Callable[..., DictConfig]:
    """compose(*overrides), shrunk to a tiny CPU run unless the overrides say otherwise."""

    def make(*overrides: str, fast: bool = True) -> DictConfig:
        return compose_config([*(FAST if fast else ()), *overrides])

    return make


@pytest.fixture(scope="session")
def slurm() -> Callable[..., subprocess.CompletedProcess[str]]:
    """A SLURM cluster this process can submit to; returns a runner of SLURM commands.

    Start one with `tests/slurm/start_slurm.sh --install` and `source /tmp/spacing-slurm/env.sh`
    (`.ci/run` does both). Without one the SLURM tests skip, except in CI (CI=true), where they fail.
    """
    reason = None
    if shutil.which("sbatch") is None:
        reason = "sbatch is not on PATH"
    elif not os.environ.get("SLURM_CONF"):
        reason = "SLURM_CONF is not set"
    else:
        ping = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30)
        if ping.returncode != 0 or not ping.stdout.strip():
            reason = f"sinfo does not answer ({ping.stderr.strip() or 'no nodes'})"
    if reason is not None:
        message = (
            f"no SLURM cluster: {reason}; start one with tests/slurm/start_slurm.sh --install "
            "and source /tmp/spacing-slurm/env.sh"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message} (CI must run the SLURM tests)")
        pytest.skip(message)

    def command(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(args), capture_output=True, text=True, timeout=60, check=True)

    return command
