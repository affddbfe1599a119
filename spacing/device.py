"""Choosing the device a run trains on."""

from __future__ import annotations

import torch

from spacing.errors import DeviceError


def resolve_device(requested: str) -> torch.device:
    """`auto` picks CUDA when present, else CPU; an explicit `cuda` without a GPU is an error."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(
                f"trainer.device={requested} was requested but no CUDA GPU is visible; "
                "use trainer.device=cpu (or auto)."
            )
        device = torch.device(requested)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(
                f"trainer.device={requested} names a GPU that does not exist "
                f"({torch.cuda.device_count()} visible); use cuda:0..cuda:{torch.cuda.device_count() - 1}."
            )
        return device
    return torch.device("cpu")
