"""Where the training loop makes the host wait for the device, step by step.

On CUDA, ``torch.cuda.set_sync_debug_mode("warn")`` reports every synchronising call (a value
read on the host, a blocking copy); without a GPU, a torch-function mode records every call
that reads a tensor's value on the host (``item``, ``bool``, ``float``, ``tolist``,
``nonzero``, boolean-mask indexing, ...) and every ``torch.tensor(data, device=...)``, which
sync wherever the tensors live on a GPU.
:func:`syncs_per_step` runs one training epoch of a :class:`~spacing.runner.Trainer` under
either and attributes each event to the step it happened in (from the start of one
``train_step`` to the start of the next; the epoch's end counts with its last step).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

HOST_READS = frozenset(
    {"item", "tolist", "__bool__", "__float__", "__int__", "__index__", "__format__", "nonzero", "numpy", "masked_select", "unique"}
)
"""Tensor calls that need the tensor's value on the host."""


def _reads_by_mask(name: str, args: tuple[Any, ...]) -> bool:
    """``x[mask]`` / ``x[mask] = v`` with a boolean tensor: the result's size depends on the mask's values."""
    if name not in ("__getitem__", "__setitem__") or len(args) < 2:
        return False
    index = args[1] if isinstance(args[1], tuple) else (args[1],)
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in index)


def _copies_host_data(name: str, kwargs: dict[str, Any]) -> bool:
    """``torch.tensor(data, device=...)``: host data copied to the device (a blocking copy to a GPU)."""
    return name in ("tensor", "as_tensor") and kwargs.get("device") is not None


class HostReads(TorchFunctionMode):
    """Appends the name of every host read (see :data:`HOST_READS`) and host-data copy to the device to `events`."""

    def __init__(self, events: list[str]) -> None:
        super().__init__()
        self.events = events

    def __torch_function__(self, func: Callable[..., Any], types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None) -> Any:
        name = getattr(func, "__name__", "")
        if name in HOST_READS or _reads_by_mask(name, args) or _copies_host_data(name, kwargs or {}):
            self.events.append(name)
        return func(*args, **(kwargs or {}))


class SyncRecorder:
    """Within its block, counts host syncs (on CUDA, via the sync debug mode) or host reads (elsewhere)."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.reads: list[str] = []
        self._caught: list[warnings.WarningMessage] = []
        self._context: Any = None

    @property
    def count(self) -> int:
        if self.cuda:
            return sum(1 for w in self._caught if "synchroniz" in str(w.message))
        return len(self.reads)

    def __enter__(self) -> SyncRecorder:
        if self.cuda:
            self._context = warnings.catch_warnings(record=True)
            self._caught = self._context.__enter__()
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
        else:
            self._context = HostReads(self.reads)
            self._context.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.cuda:
            torch.cuda.set_sync_debug_mode("default")
        self._context.__exit__(*exc)


def syncs_per_step(trainer: Any, epoch: int) -> list[int]:
    """Run `trainer`'s training epoch `epoch` and return the number of syncs in each of its steps."""
    method = trainer.method
    original = method.train_step
    starts: list[int] = []
    with SyncRecorder(trainer.device) as recorder:

        def counted_step(batch: Any, step: int) -> Any:
            starts.append(recorder.count)
            return original(batch, step)

        method.train_step = counted_step
        try:
            trainer.train_epoch(epoch)
        finally:
            del method.train_step
        ends = [*starts[1:], recorder.count]
    return [end - start for start, end in zip(starts, ends)]
