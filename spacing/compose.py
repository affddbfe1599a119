"""Composing configs the way ``python run.py`` does, without running anything.

Hydra composes a run's config from ``conf/`` against the dataclass schemas registered here. The
same composition is needed before anything runs: to explain a bad override in one sentence
(:mod:`spacing.cli`), to check every cell of a grid (:mod:`spacing.plan`) and to submit an array
without waiting for it (:mod:`spacing.submit`). Importing this module registers the schemas'
resolver for cell dir names (every process that resolves ``hydra.sweep.subdir`` imports it
through the task function's module). Nothing here imports torch.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import hashlib
import json
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from hydra._internal.hydra import Hydra
from hydra._internal.utils import create_automatic_config_search_path, get_args_parser
from hydra.core.config_search_path import SearchPathQuery
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import ConfigCompositionException, HydraException, MissingConfigException, OverrideParseException
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict, read_write
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException, ValidationError

import spacing.config as schema
from spacing.config import SCHEMAS, Config, method_schemas, to_dict
from spacing.neutral import CELL_HASH_LENGTH, NEUTRAL_GROUPS, NEUTRAL_KEYS, cell_dir_name
from spacing.sweeper import (
    FUSE_OPTION,
    GRID_SWEEPER,
    Compose,
    Job,
    cached,
    fusion_refused,
    grid_cells,
    grid_jobs,
    refuse_hand_set_group,
    require_plugins,
)

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
CONFIG_NAME = "config"
TASK_NAME = "run"
"""Hydra's job name, so every entry point (run.py, ``spacing run``) logs to ``run.log``."""
CELL_DIR_RESOLVER = "spacing.cell_dir"
"""``${spacing.cell_dir:}`` in ``hydra.run.dir`` and ``hydra.sweep.subdir``: the run's dir name from its resolved config."""
GRID_DIR_RESOLVER = "spacing.grid_dir"
"""``${spacing.grid_dir:}`` in ``hydra.sweep.dir``: an ad-hoc grid's dir name from the command's overrides."""
SWEEP_DIR = "hydra.sweep.dir"
BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
GRID_SWEEPERS = (BASIC_SWEEPER, GRID_SWEEPER)
"""Sweepers that launch a fixed grid known up front (Hydra's basic one, and spacing's with its controls)."""
PLUGINS = {"hydra/sweeper/optuna": "optuna"}
"""Config options that come with an optional extra of this project, and the extra's name."""


def register_configs() -> None:
    """Put the dataclass schemas where the YAML options in conf/ extend them, and every method's config
    where ``method=<name>`` finds it (a method needs no YAML file of its own)."""
    store = ConfigStore.instance()
    store.store(name="config_schema", node=Config)
    for group, schemas in SCHEMAS.items():
        for name, node in schemas.items():
            store.store(group=f"schema/{group}", name=name, node=node)
    for name, node in method_schemas().items():
        store.store(group="method", name=name, node=node)


def _cell_dir(*, _root_: DictConfig) -> str:
    """The dir name of the cell whose whole config (hydra node included) is `_root_`; under an optimising
    sweeper (Optuna, ...) it shows the values the sweeper tunes, so each trial's dir says what it tried."""
    tuned: tuple[str, ...] = ()
    if OmegaConf.select(_root_, "hydra.sweeper._target_") not in GRID_SWEEPERS:
        params = OmegaConf.select(_root_, "hydra.sweeper.params")
        tuned = tuple(str(key) for key in params) if isinstance(params, DictConfig) else ()
    return cell_dir_name(to_dict(app_config(_root_)), tuned)


def grid_dir_name(task_overrides: Sequence[str], default_method: str) -> str:
    """An ad-hoc grid's dir name: its method(s), then a digest of the overrides that span it.

    E.g. ``ema-3f9a2c1b7e`` for ``method=ema method.interval=0,0.5 seed=0,1``. The overrides are
    normalised (sorted by key, a sweep's values sorted) and the neutral keys left out, so the same
    grid typed again, its values in another order, or with another ``trainer.threads``, lands in the
    same dir, where its finished cells are skipped and its unfinished ones resume.
    """
    spanned: dict[str, list[str]] = {}
    for override in OverridesParser.create().parse_overrides(list(task_overrides)):
        key = override.get_key_element()
        bare = key.lstrip("+~")
        if bare in NEUTRAL_KEYS or bare.partition(".")[0] in NEUTRAL_GROUPS:
            continue
        spanned[key] = _values(override)
    digest = hashlib.sha256(json.dumps(sorted(spanned.items())).encode()).hexdigest()[:CELL_HASH_LENGTH]
    methods = spanned.get("method", [default_method])
    return f"{'+'.join(methods)}-{digest}"


def _values(override: Override) -> list[str]:
    """An override's values as text: a sweep's elements sorted, a plain value alone."""
    if override.is_sweep_override() and not override.is_interval_sweep():
        try:
            return sorted(override.sweep_string_iterator())
        except HydraException:  # a glob needs the config loader: keep it as typed
            pass
    return [override.get_value_element_as_str()]


def _grid_dir(*, _root_: DictConfig) -> str:
    """The grid dir name of the command whose master config (hydra node included) is `_root_`."""
    return grid_dir_name(list(_root_.hydra.overrides.task), str(OmegaConf.select(_root_, "method.name")))


def pin_sweep_dir(master: DictConfig) -> None:
    """Make a multirun's jobs use the sweep dir `master` resolves to.

    A job's config is composed anew from its own overrides plus the master's ``hydra`` overrides
    (Hydra's ``load_sweep_config``, by every launcher), so an ad-hoc grid's ``${spacing.grid_dir:}``
    would be named from one cell's overrides there. Adding the resolved dir to the master's hydra
    overrides makes every launcher compose each job into the grid's dir.
    """
    given = OmegaConf.to_container(master.hydra.sweep, resolve=False)["dir"]  # type: ignore[index]
    if GRID_DIR_RESOLVER not in str(given):
        return
    resolved = str(master.hydra.sweep.dir)
    with read_write(master.hydra), open_dict(master.hydra):
        master.hydra.sweep.dir = resolved
        master.hydra.overrides.hydra.append(f"{SWEEP_DIR}={Override._get_value_element_as_str(resolved)}")


class PinSweepDir(Callback):
    """The Hydra callback that calls :func:`pin_sweep_dir` before the sweeper makes any job."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        pin_sweep_dir(config)


def register_resolvers() -> None:
    if not OmegaConf.has_resolver(CELL_DIR_RESOLVER):
        OmegaConf.register_new_resolver(CELL_DIR_RESOLVER, _cell_dir)
    if not OmegaConf.has_resolver(GRID_DIR_RESOLVER):
        OmegaConf.register_new_resolver(GRID_DIR_RESOLVER, _grid_dir)


register_resolvers()


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Hydra's own command line (overrides, -m, --cfg, --config-dir, ...), parsed as Hydra will."""
    return get_args_parser().parse_args(list(argv))


@contextmanager
def hydra_session(args: argparse.Namespace) -> Iterator[Hydra]:
    """A Hydra instance with the search path ``python run.py ARGS`` gets; cleared on exit."""
    register_configs()
    search_path = create_automatic_config_search_path(__file__, None, args.config_path or str(CONF_DIR))
    if args.config_dir is not None:
        search_path.prepend("command-line", f"file://{os.path.abspath(args.config_dir)}", SearchPathQuery(provider="schema"))
    GlobalHydra.instance().clear()
    hydra = Hydra.create_main_hydra2(task_name=TASK_NAME, config_search_path=search_path)
    try:
        yield hydra
    finally:
        GlobalHydra.instance().clear()


def compose_master(hydra: Hydra, args: argparse.Namespace, run_mode: RunMode) -> DictConfig:
    """The config Hydra composes for the command (hydra node included, sweep values not expanded)."""
    if run_mode == RunMode.MULTIRUN:
        require_plugins()  # the grid sweeper and the launchers, found by Hydra only where pip installed them
    mode = f"hydra.mode={run_mode.name}"
    master = hydra.compose_config(args.config_name or CONFIG_NAME, [*args.overrides, mode], run_mode=run_mode)
    refuse_hand_set_group(master)
    if run_mode == RunMode.MULTIRUN:
        pin_sweep_dir(master)
    return master


def is_grid(master: DictConfig) -> bool:
    """Whether the multirun's sweeper launches a fixed grid known up front (Hydra's basic one, or spacing's)."""
    return OmegaConf.select(master, "hydra.sweeper._target_") in GRID_SWEEPERS


def grid_plan(hydra: Hydra, master: DictConfig, compose: Compose | None = None) -> tuple[list[list[str]], list[Job]]:
    """The overrides of every cell of the grid, expanded as the grid sweeper does (with its controls), and
    the jobs it launches them in (one per cell, or with ``hydra.sweeper.fuse`` one per fused group).

    `compose` composes a cell (default: :func:`compose_cell`, each cell once)."""
    params = OmegaConf.select(master, "hydra.sweeper.params") or {}
    given = [f"{key}={value}" for key, value in params.items()]
    given += list(OmegaConf.to_container(master.hydra.overrides.task, resolve=False))  # type: ignore[arg-type]
    parsed = OverridesParser.create(config_loader=hydra.config_loader).parse_overrides(given)
    controls = bool(OmegaConf.select(master, "hydra.sweeper.controls", default=False))
    fuse = bool(OmegaConf.select(master, "hydra.sweeper.fuse", default=False))
    compose = compose or cached(lambda cell: compose_cell(hydra, master, cell))
    cells = grid_cells(parsed, compose, controls)
    return cells, grid_jobs(cells, compose, fuse)


def compose_cell(hydra: Hydra, master: DictConfig, overrides: Sequence[str]) -> DictConfig:
    """One cell's config (hydra node included) as the launcher will compose it."""
    return hydra.config_loader.load_sweep_config(master, list(overrides))


def cell_dir(cell: DictConfig) -> Path:
    """Where Hydra will put the cell: ``hydra.sweep.dir / hydra.sweep.subdir``."""
    return Path(str(cell.hydra.sweep.dir)) / str(cell.hydra.sweep.subdir)


def app_config(cell: DictConfig) -> DictConfig:
    """The run config the task function receives: a copy of the cell without its hydra node."""
    task = copy.deepcopy(cell)
    with read_write(task), open_dict(task):
        del task["hydra"]
    return task


def explain(exc: BaseException) -> str:
    """One sentence for a config composition error: what is wrong, where, and the valid choices."""
    if isinstance(exc, yaml.MarkedYAMLError):
        return _explain_yaml(exc)
    if isinstance(exc, MissingConfigException) and exc.missing_cfg_file:
        group, _, choice = exc.missing_cfg_file.rpartition("/")
        if exc.missing_cfg_file in PLUGINS:
            extra = PLUGINS[exc.missing_cfg_file]
            return f"{group}={choice} is a Hydra plugin that is not installed; install it with pip install -e \".[{extra}]\"."
        if exc.options is not None:
            return f"unknown {group} '{choice}'; valid choices for {group}: {', '.join(sorted(exc.options))}."
    cause = exc.__cause__ if isinstance(exc.__cause__, OmegaConfBaseException) else exc
    refused = _fusion_refused(exc, cause)
    if refused is not None:
        return refused
    unknown = isinstance(cause, ConfigKeyError | ConfigAttributeError) and cause.full_key
    if unknown and dataclasses.is_dataclass(cause.object_type):
        return _unknown_key(cause.full_key, cause.object_type, None)
    if unknown and isinstance(cause.parent_node, DictConfig):  # a node without a schema (a plugin's options): its keys
        return _unknown_key(cause.full_key, None, None, [str(key) for key in cause.parent_node])
    if isinstance(cause, ValidationError) and cause.full_key:
        return f"invalid value for '{cause.full_key}': {cause.msg.splitlines()[0]}."
    if isinstance(exc, OverrideParseException):
        return f"cannot parse override '{exc.override}': {exc.message}"
    if isinstance(exc, ConfigCompositionException):
        explained = _explain_composition(str(exc))
        if explained:
            return explained
    return str(getattr(cause, "msg", None) or exc).strip().splitlines()[0]


def _fusion_refused(exc: BaseException, cause: BaseException) -> str | None:
    """The sentence for ``hydra.sweeper.fuse`` set (on the command line or by a sweep file) for a sweeper without it."""
    if getattr(cause, "full_key", None) == FUSE_OPTION and isinstance(getattr(cause, "object_type", None), type):
        return fusion_refused(cause.object_type.__name__.removesuffix("Conf"))  # type: ignore[union-attr]
    match = re.search(rf"full_key: {re.escape(FUSE_OPTION)}\s+object_type=(\w+)", str(exc))
    return fusion_refused(match[1].removesuffix("Conf")) if match else None


_COMPOSING = re.compile(r"^In '(?P<config>[^']+)': (?P<kind>\w+) raised while composing config:\n(?P<detail>.*)", re.S)


def _explain_composition(message: str) -> str | None:
    """Hydra's "In 'sweep/x': ConfigKeyError raised while composing config" with the key and file named."""
    match = _COMPOSING.match(message)
    if match is None:
        return None
    where = _config_file(match["config"])
    key = re.search(r"full_key: (\S+)", match["detail"])
    schema_name = re.search(r"object_type=(\w+)", match["detail"])
    schema_type = getattr(schema, schema_name[1], None) if schema_name else None
    if match["kind"] in ("ConfigKeyError", "ConfigAttributeError") and key and dataclasses.is_dataclass(schema_type):
        return _unknown_key(key[1], schema_type, where)
    return f"{match['detail'].strip().splitlines()[0]} (in {where})."


def _unknown_key(full_key: str, schema_type: Any, where: str | None, keys: list[str] | None = None) -> str:
    """The sentence for an unknown key: where, and the valid keys (the schema's fields, or `keys`)."""
    valid = ", ".join(sorted(keys if keys is not None else (f.name for f in dataclasses.fields(schema_type))))
    parent = full_key.rpartition(".")[0] or "the top level"
    place = f" in {where}" if where else ""
    return f"unknown key '{full_key}'{place}; valid keys under {parent}: {valid}."


def _config_file(config: str) -> str:
    """The file of a config named as Hydra names it (``sweep/demo``), the target of conf/'s links."""
    path = CONF_DIR / f"{config}.yaml"
    return shown(path.resolve()) if path.exists() else f"{config}.yaml"


def shown(path: Path | str) -> str:
    """`path` relative to the current dir when it is below it, else absolute: how paths are printed."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _explain_yaml(exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    problem = " ".join(str(part) for part in (exc.context, exc.problem) if part)
    if mark is None:
        return f"a config file is not valid YAML: {problem}."
    return f"{shown(mark.name)} line {mark.line + 1} is not valid YAML ({problem}); fix that line."
