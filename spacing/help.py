"""``python run.py --help``: what the program does, the config groups a user picks, three examples.

Hydra's own help lists every group of the config tree, the ones the config composes by itself
(the schemas, the faithful presets' per-method files) among them, and scans every installed Hydra
plugin first (seconds on a busy machine). This help reads the groups from ``conf/`` and the
defaults list of ``conf/config.yaml`` instead: nothing is imported or composed. Hydra's own help
stays one flag away (``--hydra-help``).
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from spacing.config import method_schemas

COMPOSED_BY_THE_CONFIG = ("faithful/data", "faithful/method", "sweeper")
"""Groups that conf/config.yaml selects by itself (from other choices): never picked by hand."""

ABOUT = """\
{prog}: train one run of the spacing harness, or a grid of runs with -m.

A spaced ensemble (dropout, EMA weight averaging, online or self knowledge distillation) is
refreshed every step ("massed", method.interval=0) or every s epochs ("spaced", method.interval=s).
Each run writes result.json and history.csv into a dir named from its config, so the same command
skips a finished run and resumes an interrupted one; a grid ends with its figures and a verdict."""

EXAMPLES = """\
Examples:
  {prog} method=ema method.interval=0.5 trainer.epochs=20     # one spaced EMA run
  {prog} -m method=ema method.interval=0,0.5,1 seed=0,1,2     # a grid of 9 cells, analysed at the end
  {prog} -m +sweep=demo                                       # the main job: spaced vs massed vs control

Any key is an override (key=value); {prog} --cfg job prints them all with their values.
spacing plan ARGS checks a grid without training; Hydra's own options: {prog} --hydra-help."""


def groups(conf_dir: Path) -> dict[str, list[str]]:
    """Each config group a user picks (`conf_dir`'s folders of YAML files, and ``hydra/launcher``), with its options."""
    found: dict[str, list[str]] = {}
    for folder, _, files in sorted(os.walk(conf_dir, followlinks=True)):  # conf/sweep links to sweeps/
        group = Path(folder).relative_to(conf_dir).as_posix()
        if group == "." or group in COMPOSED_BY_THE_CONFIG or (group.startswith("hydra") and group != "hydra/launcher"):
            continue
        options = sorted(Path(name).stem for name in files if name.endswith(".yaml"))
        if options:
            found[group] = options
    found["method"] = sorted({*found.get("method", []), *method_schemas()})  # a method needs no file of its own
    return found


def defaults(conf_dir: Path) -> dict[str, str | None]:
    """The option conf/config.yaml chooses for each group it names (None: the group is optional, empty by default)."""
    chosen: dict[str, str | None] = {}
    for entry in yaml.safe_load((conf_dir / "config.yaml").read_text())["defaults"]:
        if isinstance(entry, dict):
            (key, value), = entry.items()
            chosen[key.removeprefix("optional ").removeprefix("override ")] = value
    return chosen


def help_text(conf_dir: Path, prog: str) -> str:
    """The whole help: what it does, the groups (the default option starred), examples."""
    chosen = defaults(conf_dir)
    width = max(len(group) for group in groups(conf_dir)) + 1
    lines = [ABOUT.format(prog=prog), "", "== Configuration groups ==  (group=option, * the default; +group=option for a group",
             "that is not in the defaults; hydra/launcher=slurm for a SLURM array)"]
    for group, options in groups(conf_dir).items():
        picked = chosen.get(group)
        shown = " ".join(f"{option}*" if option == picked else option for option in options)
        name = group if group in chosen or group.startswith("hydra/") else f"+{group}"
        lines.append(f"  {name:<{width}} {shown}")
    return "\n".join([*lines, "", EXAMPLES.format(prog=prog)])
