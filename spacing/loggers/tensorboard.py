"""TensorBoard: event files in ``<run dir>/tensorboard/<run name>``.

``tensorboard --logdir <sweep dir>`` then shows every cell of a sweep as its own run, named by
its folder (``3/tensorboard/ema-i0.5-decay0.99-seed1``). The config goes in as text and, at the
end, as HParams (with the final metrics), so the HParams tab compares a sweep's cells.
"""

from __future__ import annotations

from typing import Any

from omegaconf import OmegaConf

from spacing.config import TensorBoardConfig
from spacing.config import flatten
from spacing.loggers.base import Logger, RunInfo, missing_package

EVENTS_DIR = "tensorboard"


class TensorBoardLogger(Logger):
    name = "tensorboard"

    def __init__(self, cfg: TensorBoardConfig) -> None:  # nothing to set beyond `enabled`
        try:
            from torch.utils.tensorboard import SummaryWriter
            from torch.utils.tensorboard.summary import hparams
        except ImportError:
            raise missing_package(self.name, "tensorboard") from None
        self._writer_class = SummaryWriter
        self._hparams = hparams
        self.writer: Any = None
        self.info: RunInfo | None = None

    def start(self, info: RunInfo, resume_id: str | None) -> None:
        """A resumed run appends to the same folder; TensorBoard drops the points of an interrupted
        epoch when the same steps arrive again."""
        self.info = info
        self.writer = self._writer_class(log_dir=str(info.out_dir / EVENTS_DIR / info.name))
        tags = "\n".join(f"- {key}: {value}" for key, value in info.tags.items())
        self.writer.add_text("run", f"output dir: `{info.out_dir}`\n\n{tags}")
        self.writer.add_text("config", "```\n" + OmegaConf.to_yaml(OmegaConf.create(info.config)) + "```")
        self.writer.flush()

    def log_step(self, step: int, values: dict[str, float]) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)

    def log_epoch(self, epoch: int, step: int, values: dict[str, float]) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, epoch)
        self.writer.flush()

    def finish(self, status: str, error: str | None, values: dict[str, float]) -> None:
        if self.writer is None or self.info is None:
            return
        epoch = int(values.get("final/epochs_completed", 0))
        hparams = {key: _hparam(value) for key, value in flatten(self.info.config).items()}
        hparams["status"] = status
        for summary in self._hparams(hparams, values):
            self.writer.file_writer.add_summary(summary, epoch)
        for key, value in values.items():
            self.writer.add_scalar(key, value, epoch)
        self.writer.add_text("status", status + (f": {error}" if error else ""), epoch)
        self.writer.close()
        self.writer = None


def _hparam(value: Any) -> int | float | str | bool:
    """HParams take numbers, text and bools; anything else (lists, None) is shown as text."""
    return value if isinstance(value, int | float | str | bool) else str(value)
