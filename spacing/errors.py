"""Errors a user can cause and fix (the exit codes of the command lines live in :mod:`spacing.contract`).

Anything raised as a :class:`UserError` is shown as one sentence (no traceback) and ends the
process with exit code 2; everything else is a bug and keeps its traceback (exit code 1).
"""

from pathlib import Path

from spacing.contract import EXIT_BUG, EXIT_DIVERGED, EXIT_INCOMPLETE, EXIT_INTERRUPTED, EXIT_USER_ERROR  # noqa: F401 - their home is the contract



class UserError(Exception):
    """A problem in the user's input (config, data location, hardware request) with a known fix."""


class ConfigError(UserError):
    """A config value is out of range or inconsistent with another one."""


class DataError(UserError):
    """A dataset is missing or malformed on disk."""


class DeviceError(UserError):
    """The requested device is not available on this machine."""


class StorageError(UserError):
    """An output dir cannot be written: read-only, no permission, or the disk is full."""


class DiskFull(StorageError):
    """A write failed because the disk (or the user's quota on it) is full: `path` is what it was writing."""

    def __init__(self, message: str, path: Path, errno: int) -> None:
        super().__init__(message)
        self.path = path
        self.errno = errno

    def __reduce__(self) -> tuple[type, tuple[str, Path, int]]:  # picklable, e.g. across launcher processes
        return (DiskFull, (str(self), self.path, self.errno))
