"""``python run.py --help``: what the program does, the groups a user picks (no internal one), examples that compose."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

from tests.helpers import CONF, ROOT, cli_env

INTERNAL = ("schema/", "faithful/data", "faithful/method", "sweeper ", "hydra/sweeper", "hydra/help", "hydra/job_logging")


def help_output(tmp_path: Path, *extra: str) -> str:
    done = subprocess.run([sys.executable, str(ROOT / "run.py"), "--help", *extra], cwd=tmp_path, env=cli_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and not done.stderr, done.stderr
    return done.stdout


def test_help_says_what_it_does_and_lists_only_the_groups_a_user_picks(tmp_path: Path) -> None:
    text = help_output(tmp_path)
    assert text.startswith(f"python {ROOT / 'run.py'}: train one run of the spacing harness, or a grid of runs with -m.")
    assert "powered by Hydra" not in text
    rows = {line.split()[0]: line.split()[1:] for line in text.split("== Configuration groups ==")[1].split("Examples:")[0]
            .splitlines()[2:] if line.strip()}
    assert not [group for group in rows for internal in INTERNAL if group.lstrip("+").startswith(internal.strip())]
    assert {"dataset", "model", "method", "trainer", "logger", "faithful", "hydra/launcher", "+sweep", "+recipe"} <= set(rows)
    assert "digits*" in rows["dataset"] and "small_cnn*" in rows["model"] and "baseline*" in rows["method"]
    assert {path.stem for path in (CONF / "sweep").glob("*.yaml")} == set(rows["+sweep"])
    assert {"ema", "online_kd", "self_kd", "dropout", "spaced_kd"} <= set(rows["method"])  # schemas and presets alike


def test_help_with_overrides_is_the_same_help(tmp_path: Path) -> None:
    assert help_output(tmp_path, "foo=1") == help_output(tmp_path, "method=nosuch") == help_output(tmp_path)


def test_every_example_of_the_help_composes(tmp_path: Path) -> None:
    examples = re.findall(r"^  python \S+ (.*?)\s+#", help_output(tmp_path), flags=re.M)
    assert len(examples) == 3
    for example in examples:
        args = shlex.split(example)
        check = ["--cfg", "job", *args]  # a multirun's --cfg prints its plan: every cell composed, nothing trained
        done = subprocess.run([sys.executable, str(ROOT / "run.py"), *check], cwd=tmp_path, env=cli_env(),
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, (example, done.stderr[-2000:])
    assert not (tmp_path / "outputs").exists() and not (tmp_path / "multirun").exists()
