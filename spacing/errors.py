"""Errors a user can cause and fix.

Anything raised as a :class:`UserError` is shown as one sentence (no traceback) and ends the
process with exit code 2; everything else is a bug and keeps its traceback.
"""

from pathlib import Path


class UserError(Exception):
    """A problem in the user's input (config, data location, hardware request) with a known fix."""


class ConfigError(UserError):
    """A config value is out of range or inconsistent with another one."""


class DataError(UserError):
    """A dataset is missing or malformed on disk."""


class DeviceError(UserError):
    """The requested device is not available on this machine."""


class DiskFull(UserError):
    """A write failed because the disk (or the user's quota on it) is full: `path` is what it was writing."""

    def __init__(self, message: str, path: Path, errno: int) -> None:
        super().__init__(message)
        self.path = path
        self.errno = errno

    def __reduce__(self) -> tuple[type, tuple[str, Path, int]]:  # picklable, e.g. across launcher processes
        return (DiskFull, (str(self), self.path, self.errno))
