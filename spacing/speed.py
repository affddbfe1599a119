"""Trainer speed switches: autocast precision, channels_last memory format, torch.compile.

``auto`` turns on what the device does well: bf16 autocast (fp16 where a GPU lacks bf16) and
channels_last on CUDA; plain fp32 and the default memory format on CPU. fp16 needs a gradient
scaler against underflow; the run's scaler reaches every optimizer step through
``MethodContext.grad_scaler`` and :meth:`spacing.methods.base.Method.optimize`. bf16 needs none.
Autocast wraps forward passes and losses only (:meth:`spacing.methods.base.Method.autocast`).
On CUDA, cuDNN autotuning is on: batches have fixed shapes (the last one aside), so the fastest
convolution algorithm is found once per shape.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TypeVar

import torch

from spacing.config import TrainerConfig
from spacing.errors import DeviceError
from spacing.models.compiled import Backend, compile_module

COMPILE_BACKEND: Backend = "inductor"
"""The torch.compile backend of ``trainer.compile=true``; the GPU check and the tests swap in others."""

Module = TypeVar("Module", bound=torch.nn.Module)


@contextlib.contextmanager
def compiling_with(backend: Backend) -> Iterator[None]:
    """Within the block, ``trainer.compile=true`` compiles with `backend` (as benchmarks and checks choose)."""
    global COMPILE_BACKEND
    previous, COMPILE_BACKEND = COMPILE_BACKEND, backend
    try:
        yield
    finally:
        COMPILE_BACKEND = previous


DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Speed:
    """The resolved switches for one run on one device."""

    device: torch.device
    dtype: torch.dtype | None
    """Autocast dtype; None = plain fp32."""
    channels_last: bool
    compile: bool

    @classmethod
    def resolve(cls, cfg: TrainerConfig, device: torch.device) -> Speed:
        cuda = device.type == "cuda"
        precision = cfg.precision
        if precision == "auto":
            precision = ("bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp16") if cuda else "fp32"
        if precision == "bf16" and cuda and not torch.cuda.is_bf16_supported(including_emulation=False):
            raise DeviceError(f"trainer.precision=bf16 but {torch.cuda.get_device_name(device)} has no bf16; use trainer.precision=fp16 or fp32.")
        channels_last = cuda if cfg.channels_last == "auto" else cfg.channels_last == "true"
        if cuda:
            torch.backends.cudnn.benchmark = True
        return cls(device, DTYPES[precision], channels_last, cfg.compile)

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def autocast(self) -> contextlib.AbstractContextManager:
        """Mixed precision around forward passes (a no-op for fp32)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def grad_scaler(self) -> torch.amp.GradScaler | None:
        """A loss scaler for fp16; None otherwise."""
        return torch.amp.GradScaler(self.device.type) if self.dtype == torch.float16 else None

    def prepare(self, module: Module) -> Module:
        """Put a freshly built module on the device, in the run's memory format, compiled if asked.

        Every module a run trains goes through here: the models, and what a method adds to them
        (self KD's exits), so none is left in the default memory format or uncompiled.
        """
        module = module.to(self.device, memory_format=self.memory_format)
        if self.compile:
            compile_module(module, COMPILE_BACKEND)
        return module
