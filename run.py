"""Hydra entry point: compose the config, train one run into Hydra's output dir.

    python run.py                                   # one offline run on CPU
    python run.py method=baseline trainer.epochs=20 seed=1
    python run.py -m seed=0,1,2                     # a multirun sweep

Errors a user can fix (a typo in an override, a value out of range, an unknown option, no GPU)
end with one sentence that names the fix and exit code 2, without a traceback.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
from typing import Any

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.errors import HydraException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException, ValidationError

from spacing.claim import RUNNING_ELSEWHERE, RunningElsewhere
from spacing.config import SCHEMAS, Config
from spacing.errors import UserError
from spacing.runner import run
from spacing.sweeper import register_plugin

log = logging.getLogger("run")

EXIT_USER_ERROR = 2
EXIT_DIVERGED = 3


def register_configs() -> None:
    """Put the dataclass schemas where the YAML options in conf/ extend them, and the grid sweeper where Hydra finds it."""
    register_plugin()
    store = ConfigStore.instance()
    store.store(name="config_schema", node=Config)
    for group, schemas in SCHEMAS.items():
        for name, schema in schemas.items():
            store.store(group=f"schema/{group}", name=name, node=schema)


def explain(exc: BaseException) -> str:
    """One sentence for a config composition error, naming the valid choices."""
    if isinstance(exc, MissingConfigException) and exc.missing_cfg_file and exc.options is not None:
        group, _, choice = exc.missing_cfg_file.rpartition("/")
        options = ", ".join(o for o in sorted(exc.options))
        return f"unknown {group} '{choice}'; valid choices for {group}: {options}."
    cause = exc.__cause__ if isinstance(exc.__cause__, OmegaConfBaseException) else exc
    if isinstance(cause, ConfigKeyError | ConfigAttributeError) and cause.full_key and dataclasses.is_dataclass(cause.object_type):
        valid = ", ".join(sorted(f.name for f in dataclasses.fields(cause.object_type)))
        parent = cause.full_key.rpartition(".")[0] or "the top level"
        return f"unknown key '{cause.full_key}'; valid keys under {parent}: {valid}."
    if isinstance(cause, ValidationError) and cause.full_key:
        return f"invalid value for '{cause.full_key}': {cause.msg.splitlines()[0]}."
    if isinstance(exc, OverrideParseException):
        return f"cannot parse override '{exc.override}': {exc.message}"
    return str(getattr(cause, "msg", None) or exc).strip().splitlines()[0]


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> str:
    """Train one run; in a multirun a failing cell is logged and recorded, and the sweep goes on."""
    out_dir = HydraConfig.get().runtime.output_dir
    single_run = HydraConfig.get().mode == RunMode.RUN
    sweep_dir = None if single_run else HydraConfig.get().sweep.dir
    try:
        result = run(cfg, out_dir, sweep_dir)
    except UserError as exc:
        if single_run:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(EXIT_USER_ERROR)
        if isinstance(exc, RunningElsewhere):  # another process trains this cell: not a failure of this launch
            log.warning("%s", exc)
            return RUNNING_ELSEWHERE
        log.error("failed: %s (%s)", exc, out_dir)
        return "failed"
    except Exception:
        if single_run:
            raise
        log.exception("failed: %s", out_dir)
        return "failed"
    summary = ", ".join(f"{target} {m['test_acc']:.4f}" for target, m in result["metrics"].items())
    print(f"{result['status']}: test accuracy {summary or 'n/a'} -> {out_dir}")
    if result["status"] == "diverged" and single_run:
        print(f"error: {result['error']}", file=sys.stderr)
        sys.exit(EXIT_DIVERGED)
    return str(result["status"])


def cli() -> None:
    # Let composition errors reach us instead of Hydra's printer, so they can be explained in one sentence.
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")
    register_configs()
    try:
        main()
    except (HydraException, OmegaConfBaseException) as exc:
        print(f"error: {explain(exc)}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)


if __name__ == "__main__":
    cli()
