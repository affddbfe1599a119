"""The config reference (``docs/reference/config.md``), rendered from the dataclass schemas.

Every key a run has is a field of a dataclass in :mod:`spacing.config`. This module walks those
dataclasses and writes one table per config node: the key, its default, the values its
``__post_init__`` accepts (read from the checks' own messages) and what it means. So the reference
cannot drift from the schema: ``tests/docs/test_config_reference.py`` fails when the committed
page differs from :func:`render`, or when a field has no text.

A key's text is its field docstring in ``spacing/config.py`` (the string literal under the field), so
each text lives in one place, beside the field it describes. Regenerate the page with::

    python -m spacing.config_reference > docs/reference/config.md

Nothing here imports torch.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import math
import re
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import MISSING

import spacing.config as schema
from spacing.config import method_schemas

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


@dataclass(frozen=True)
class Section:
    """One table of the reference: the fields a dataclass declares, under a key prefix."""

    title: str
    prefix: str
    schema: type
    inherited: bool = False
    """List the fields of the base classes too (False: only those this class adds)."""
    note: str = ""


def sections() -> list[Section]:
    """Every config node, in the order a config reads: data, model, method, trainer, trackers, objective, top level."""
    found = [
        Section("dataset", "dataset.", schema.DatasetConfig, inherited=True, note=_options("dataset")),
        Section("dataset.augment", "dataset.augment.", schema.AugmentConfig, inherited=True),
        Section("dataset=synthetic adds", "dataset.", schema.SyntheticDatasetConfig),
        Section("model", "model.", schema.ModelConfig, inherited=True, note=_options("model")),
        Section("method: every method", "method.", schema.MethodConfig, inherited=True, note=_method_note()),
    ]
    for cls in _method_classes():
        users = sorted(name for name, method in method_schemas().items() if issubclass(method, cls))
        if _own_fields(cls):
            found.append(Section(f"method={' and method='.join(users)} adds", "method.", cls))
    found += [
        Section("trainer", "trainer.", schema.TrainerConfig, inherited=True),
        Section("logger", "logger.", schema.LoggerConfig, inherited=True, note=_options("logger")),
        Section("logger.tensorboard", "logger.tensorboard.", schema.TensorBoardConfig, inherited=True),
        Section("logger.wandb", "logger.wandb.", schema.WandbConfig, inherited=True),
        Section("logger.mlflow", "logger.mlflow.", schema.MlflowConfig, inherited=True),
        Section("objective", "objective.", schema.ObjectiveConfig, inherited=True),
        Section("top level", "", schema.Config, inherited=True),
    ]
    return found


def _method_classes() -> list[type]:
    """MethodConfig's subclasses, breadth first (the shared DistillConfig before the KD methods)."""
    ordered: list[type] = []
    pending = list(schema.MethodConfig.__subclasses__())
    while pending:
        cls = pending.pop(0)
        ordered.append(cls)
        pending.extend(cls.__subclasses__())
    return ordered


def _options(group: str) -> str:
    names = sorted(path.stem for path in (CONF_DIR / group).glob("*.yaml"))
    return f"Options (`conf/{group}/`): {', '.join(f'`{name}`' for name in names)}. An option file may set other defaults than the schema's below."


def _method_note() -> str:
    presets = sorted(path.stem for path in (CONF_DIR / "method").glob("*.yaml"))
    methods = ", ".join(f"`{name}`" for name in method_schemas())
    return f"Methods: {methods}; presets (`conf/method/`): {', '.join(f'`{name}`' for name in presets)}."


def _own_fields(cls: type) -> list[dataclasses.Field]:
    """The fields `cls` declares that no base class has (a redeclared default, as `name`, is not new)."""
    inherited = {f.name for base in cls.__mro__[1:] if dataclasses.is_dataclass(base) for f in dataclasses.fields(base)}
    return [f for f in dataclasses.fields(cls) if f.name not in inherited]


def fields(section: Section) -> list[dataclasses.Field]:
    """The section's keys: its dataclass's fields (own or all), without nested nodes (they have their own section)."""
    chosen = dataclasses.fields(section.schema) if section.inherited else _own_fields(section.schema)
    return [f for f in chosen if not _is_node(f)]


def _is_node(f: dataclasses.Field) -> bool:
    """A field that is a config node of its own (a dataclass, or a config group the top level picks)."""
    if f.default_factory is not dataclasses.MISSING and dataclasses.is_dataclass(f.default_factory):
        return True
    return f.default is MISSING and str(f.type).endswith("Config")


def docstrings() -> dict[tuple[str, str], str]:
    """(class name, field name) -> the string literal that follows the field in spacing/config.py."""
    tree = ast.parse(Path(inspect.getfile(schema)).read_text())
    found: dict[tuple[str, str], str] = {}
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        for statement, following in zip(node.body, node.body[1:]):
            if (
                isinstance(statement, ast.AnnAssign)
                and isinstance(statement.target, ast.Name)
                and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            ):
                found[(node.name, statement.target.id)] = " ".join(following.value.value.split())
    return found


def _declaring_class(cls: type, name: str) -> type:
    """The class in `cls`'s bases that first declared field `name` (where its docstring is)."""
    for base in reversed(cls.__mro__):
        if dataclasses.is_dataclass(base) and name in base.__dict__.get("__annotations__", {}):
            return base
    return cls


def documentation(section: Section, f: dataclasses.Field) -> str:
    """The key's text: its docstring in spacing/config.py, or empty where it has none."""
    return docstrings().get((_declaring_class(section.schema, f.name).__name__, f.name), "")


def undocumented() -> list[str]:
    """Keys whose field has no docstring."""
    return [section.prefix + f.name for section in sections() for f in fields(section) if not documentation(section, f)]


def accepted_values() -> dict[str, list[str]]:
    """Key -> what its checks accept, read from every ``__post_init__``'s own messages ("must be ...")."""
    found: dict[str, list[str]] = {}
    for cls in _all_schemas():
        if "__post_init__" not in cls.__dict__:
            continue
        source = textwrap.dedent(inspect.getsource(cls.__dict__["__post_init__"]))
        for call in ast.walk(ast.parse(source)):
            if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name):
                continue
            if call.func.id == "_require_choice":
                choices = getattr(schema, ast.unparse(call.args[1]))
                key = call.args[2].value  # type: ignore[attr-defined]
                _add(found, key, "one of " + ", ".join(choices))
            elif call.func.id == "_require":
                match = re.match(r"([a-z_.]+) must be (.+?)(;|\.$|$)", _message(call.args[1]))
                if match:
                    _add(found, match.group(1), match.group(2))
    return found


def _add(found: dict[str, list[str]], key: str, accepted: str) -> None:
    """Record what `key` accepts once (two methods may check one key alike)."""
    if accepted not in found.setdefault(key, []):
        found[key].append(accepted)


def _all_schemas() -> Iterator[type]:
    seen: set[type] = set()
    for section in sections():
        for cls in section.schema.__mro__:
            if dataclasses.is_dataclass(cls) and cls not in seen:
                seen.add(cls)
                yield cls


def _message(node: ast.expr) -> str:
    """A check's message as text: module constants filled in, a value it reports (``{self.x}``) as ``...``."""
    if isinstance(node, ast.Constant):
        return str(node.value)
    if not isinstance(node, ast.JoinedStr):
        return ""
    parts = []
    for value in node.values:
        if isinstance(value, ast.Constant):
            parts.append(str(value.value))
            continue
        assert isinstance(value, ast.FormattedValue)
        spec = _message(value.format_spec) if value.format_spec else ""
        try:
            parts.append(format(eval(ast.unparse(value.value), vars(schema)), spec))  # noqa: S307 (module constants)
        except (NameError, AttributeError):
            parts.append("...")
    return "".join(parts)


def _default(f: dataclasses.Field) -> str:
    if f.default_factory is not dataclasses.MISSING:
        value: Any = f.default_factory()
    else:
        value = f.default
    if value is MISSING:
        return "set by the option"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render() -> str:
    """The whole reference page, as committed in docs/reference/config.md."""
    ranges = accepted_values()
    lines = [
        "# Config reference",
        "",
        "<!-- Generated by `python -m spacing.config_reference > docs/reference/config.md` from the",
        "dataclass schemas in spacing/config.py; do not edit by hand (tests/docs/test_config_reference.py). -->",
        "",
        "Every key of a run, from the dataclass schemas in `spacing/config.py`: its default in the schema,",
        "the values its check accepts (a value outside them ends the run before anything is written, exit",
        "code 2) and what it means. Set any key on the command line: `python run.py trainer.lr=0.05`.",
        "See [Configuration](../configuration.md) for the config groups and their options.",
        "",
    ]
    for section in sections():
        keys = fields(section)
        if not keys:
            continue
        lines += [f"## {section.title}", ""]
        if section.note:
            lines += [section.note, ""]
        lines += ["| key | default | accepts | what it means |", "|---|---|---|---|"]
        for f in keys:
            key = section.prefix + f.name
            accepts = "; ".join(ranges.get(key, [])) or "—"
            row = [f"`{key}`", f"`{_default(f)}`", accepts, documentation(section, f)]
            lines.append("| " + " | ".join(_cell(part) for part in row) + " |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(), end="")
