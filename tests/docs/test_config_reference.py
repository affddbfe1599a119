"""The config reference (docs/reference/config.md) is the schema's: generated, complete, documented."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import spacing.config as schema
import spacing.config_reference as reference
from spacing.config import method_schemas, to_config
from spacing.errors import ConfigError
from tests.helpers import compose_config

PAGE = Path(__file__).resolve().parents[2] / "docs" / "reference" / "config.md"

NODES = {
    "dataset.": [schema.DatasetConfig, schema.SyntheticDatasetConfig],
    "dataset.augment.": [schema.AugmentConfig],
    "model.": [schema.ModelConfig],
    "method.": list(method_schemas().values()),
    "trainer.": [schema.TrainerConfig],
    "logger.": [schema.LoggerConfig],
    "logger.tensorboard.": [schema.TensorBoardConfig],
    "logger.wandb.": [schema.WandbConfig],
    "logger.mlflow.": [schema.MlflowConfig],
    "objective.": [schema.ObjectiveConfig],
    "": [schema.Config],
}
"""Where each schema sits in a run's config, written out here rather than read from the generator."""


def rows() -> dict[str, list[str]]:
    """The reference's table rows by key: [default, accepts, meaning]."""
    found = {}
    for line in PAGE.read_text().splitlines():
        if line.startswith("| `"):
            cells = [cell.strip() for cell in line.strip("|").split(" | ")]
            found[cells[0].strip("`")] = cells[1:]
    return found


def test_the_committed_reference_is_the_generated_one() -> None:
    assert PAGE.read_text() == reference.render(), (
        "docs/reference/config.md is stale: python -m spacing.config_reference > docs/reference/config.md"
    )


def test_every_key_of_every_schema_is_in_the_reference() -> None:
    listed = rows()
    for prefix, classes in NODES.items():
        for cls in classes:
            for f in dataclasses.fields(cls):
                nested = f.default_factory is not dataclasses.MISSING and dataclasses.is_dataclass(f.default_factory)
                group = prefix == "" and f.name in ("dataset", "model", "method")
                if not (nested or group):
                    assert prefix + f.name in listed, f"{prefix}{f.name} is missing from the config reference"


def test_every_key_has_a_docstring() -> None:
    assert reference.undocumented() == [], "give these fields a docstring in spacing/config.py"
    assert all(meaning for _, _, meaning in rows().values())


def test_a_key_without_a_docstring_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    found = reference.docstrings()
    monkeypatch.setattr(reference, "docstrings", lambda: {k: v for k, v in found.items() if k != ("TrainerConfig", "lr")})
    assert reference.undocumented() == ["trainer.lr"]


def test_a_key_s_text_is_the_docstring_under_its_field() -> None:
    assert rows()["trainer.lr"][2] == "SGD learning rate."
    assert '    lr: float = 0.01\n    """SGD learning rate."""\n' in Path(schema.__file__).read_text()


def test_defaults_are_the_schemas() -> None:
    listed = rows()
    assert listed["trainer.lr"][0] == "`0.01`"
    assert listed["method.decay"][0] == "`0.999`"
    assert listed["trainer.milestones"][0] == "`[60, 120, 160]`"
    assert listed["dataset.name"][0] == "`set by the option`"


@pytest.mark.parametrize(
    ("key", "accepts", "refused"),
    [
        ("trainer.momentum", "in [0, 1)", "trainer.momentum=1.0"),
        ("method.decay", "in [0, 1)", "method.decay=1.0"),
        ("seed", "an integer in [0, 4294967295]", "seed=4294967296"),
        ("trainer.precision", "one of auto, fp32, bf16, fp16", "trainer.precision=fp8"),
    ],
)
def test_the_accepted_values_are_what_the_checks_accept(key: str, accepts: str, refused: str) -> None:
    assert rows()[key][1] == accepts
    method = ["method=ema"] if key.startswith("method.") else []
    with pytest.raises(ConfigError, match=key.split(".")[-1]):
        to_config(compose_config([*method, refused]))
