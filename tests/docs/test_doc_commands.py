"""Docs cannot show a command that fails: every ``python run.py ...`` and ``spacing ...`` command of the
README and of docs/ is composed and checked as the CLI would before it trains anything.

A grid is not composed cell by cell by Hydra (the demo alone is 70 cells, about 13 s). Each value of
each swept key is checked in at least one cell, with the matched control of every spaced cell among
them and the fused jobs they form, so a bad value, key, option or combination with the sweep file
still fails. Hydra composes one cell per distinct choice of config options; the cells that differ
from it only in values (``seed=3``, ``method.interval=0.5``) are that config with the values set,
through the typed schema as Hydra would set them, then checked by the same ``to_config``.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra._internal.hydra import Hydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict

from spacing.compose import app_config, cell_dir, compose_cell, compose_master, hydra_session, is_grid, parse_args
from spacing.config import to_config
from spacing.sweeper import CONTROL, CONTROL_KEY, FUSE_OPTION, grid_jobs, has_control
from tests.docs.commands import ROOT, Command, commands

HELP_FLAGS = {"--help", "-h", "--hydra-help", "-sc", "--shell-completion"}
STATUS_FLAGS = {"--no-analysis", "--watch", "--every"}

ALL = commands()
RUNNABLE = list({(c.program, c.args): c for c in reversed(ALL) if not c.template}.values())[::-1]
"""Each distinct command once, named by where it first appears."""


def covering(cells: Sequence[Sequence[str]]) -> list[list[str]]:
    """Few cells of the grid that between them hold every override of every cell (greedy cover)."""
    wanted = {override for cell in cells for override in cell}
    chosen: list[list[str]] = []
    while wanted:
        best = max(cells, key=lambda cell: len(wanted.intersection(cell)))
        chosen.append(list(best))
        wanted -= set(best)
    return chosen


def composer(hydra: Hydra, master: DictConfig) -> Callable[[Sequence[str]], DictConfig]:
    """A cell's config from its overrides: Hydra composes the cell's choice of config options once,
    and a cell that differs only in values is a copy of that config with the values set."""
    parser = OverridesParser.create(config_loader=hydra.config_loader)
    composed: dict[tuple[str, ...], DictConfig] = {}

    def is_value(override: str) -> bool:
        parsed = parser.parse_override(override)
        key = parsed.key_or_group
        group = hydra.config_loader.repository.group_exists(key)
        return not (parsed.is_add() or parsed.is_delete() or group or key.startswith("hydra."))

    def compose(cell: Sequence[str]) -> DictConfig:
        options = tuple(o for o in cell if not is_value(o))
        if options not in composed:
            composed[options] = compose_cell(hydra, master, [*options])
        config = copy.deepcopy(composed[options])
        with open_dict(config.hydra):
            config.hydra.overrides.task = list(cell)
        for override in (o for o in cell if is_value(o)):
            parsed = parser.parse_override(override)
            OmegaConf.update(config, parsed.key_or_group, parsed.value(), merge=False)
        return config

    return compose


def check(command: Command) -> None:
    """Compose `command` as ``python run.py`` / ``spacing plan`` / ``spacing submit`` would, nothing trained."""
    argv = list(command.args)
    multirun = command.program in ("plan", "submit") or "-m" in argv or "--multirun" in argv
    argv = [arg for arg in argv if arg not in ("-m", "--multirun")]
    args = parse_args(argv)
    if HELP_FLAGS.intersection(argv):
        return  # the help and shell completion compose nothing; parsing them is what they need
    with hydra_session(args) as hydra:
        master = compose_master(hydra, args, RunMode.MULTIRUN if multirun else RunMode.RUN)
        if not multirun or not is_grid(master):
            to_config(app_config(master))  # a single run, or an optimising sweeper's base config
            return
        params = OmegaConf.select(master, "hydra.sweeper.params") or {}
        given = [f"{key}={value}" for key, value in params.items()]
        given += list(OmegaConf.to_container(master.hydra.overrides.task, resolve=False))  # type: ignore[arg-type]
        parsed = OverridesParser.create(config_loader=hydra.config_loader).parse_overrides(given)
        compose = composer(hydra, master)
        cells = covering(BasicSweeper.split_arguments(parsed, None)[0])
        if OmegaConf.select(master, "hydra.sweeper.controls", default=False):
            cells += [[o for o in cell if not o.startswith(f"{CONTROL_KEY}=")] + [CONTROL]
                      for cell in cells if has_control(compose(cell))]
        for cell in cells:
            composed = compose(cell)
            to_config(app_config(composed))
            assert cell_dir(composed).name
        fuse = bool(OmegaConf.select(master, FUSE_OPTION, default=False))
        for job in grid_jobs(cells, compose, fuse):
            if job.fused:
                to_config(app_config(compose(job.overrides)))


def check_status(command: Command) -> None:
    """``spacing status DIR``: DIR is the sweep dir a documented named sweep lands in, the flags exist."""
    positional = [arg for arg in command.args if not arg.startswith("-")]
    flags = [arg for arg in command.args if arg.startswith("-")]
    assert set(flags) <= STATUS_FLAGS, f"{command}: unknown options {set(flags) - STATUS_FLAGS}"
    assert len(positional) == 1, f"{command}: give one sweep dir"
    sweep = Path(positional[0])
    assert sweep.parent == Path("multirun") and (ROOT / "sweeps" / f"{sweep.name}.yaml").is_file(), (
        f"{command}: {sweep} is not the dir of a named sweep (sweeps/NAME.yaml lands in multirun/NAME)"
    )


def test_the_pages_show_commands() -> None:
    pages = {c.page for c in RUNNABLE}
    assert {"README.md", "docs/getting-started.md", "docs/sweeps.md", "docs/controls.md"} <= pages
    assert any(c.args == ("-m", "+sweep=demo") for c in RUNNABLE if c.page == "README.md")


def test_templates_are_only_forms_with_placeholders() -> None:
    """What is not composed is a form (``spacing plan ARGS``) or a command's bare name in a sentence."""
    for command in ALL:
        if command.template:
            placeholders = [arg for arg in command.args if arg.isupper() or arg == "..."]
            bare = command.inline and all(arg in ("-m", "--multirun") for arg in command.args)
            assert placeholders or bare or (command.program == "status" and not command.args), command


def missing_extra(command: Command) -> str | None:
    """Why `command` cannot compose on this install: a study (``+tune=``) needs the optional Optuna sweeper."""
    if any(arg.startswith("+tune=") for arg in command.args) and importlib.util.find_spec(
            "hydra_plugins.hydra_optuna_sweeper") is None:
        return 'the Optuna sweeper is not installed (pip install -e ".[optuna]")'
    return None


@pytest.mark.parametrize("command", RUNNABLE, ids=[f"{c.page}:{c.line}" for c in RUNNABLE])
def test_every_documented_command_composes(command: Command) -> None:
    reason = missing_extra(command)
    if reason is not None:
        pytest.skip(reason)
    if command.program == "status":
        check_status(command)
    else:
        check(command)


def test_a_bad_value_in_a_documented_grid_is_caught() -> None:
    """The check fails on a grid one of whose values is out of range, however few cells it composes."""
    bad = dataclasses.replace(RUNNABLE[0], program="plan", args=("+sweep=demo", "method.interval=0,0.5,-1"))
    with pytest.raises(Exception, match="method.interval must be >= 0"):
        check(bad)


def test_a_misspelt_key_in_a_documented_command_is_caught() -> None:
    bad = dataclasses.replace(RUNNABLE[0], program="run", args=("method=ema", "method.decya=0.5"))
    with pytest.raises(Exception, match="decya"):
        check(bad)
