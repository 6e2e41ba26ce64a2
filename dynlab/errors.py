"""Errors a user can act on. The command line prints their message as one line and exits with 2.

Each message names the file or the option concerned and says what to do.
"""
from __future__ import annotations


class DynlabError(Exception):
    """Something the user can fix (a setting, a file, a folder); the message says how."""


class DiskFullError(DynlabError, OSError):
    """A write failed for want of space; nothing half-written was left behind."""


class FolderBusyError(DynlabError):
    """Another dynlab process holds the output folder."""


class CheckpointError(DynlabError, ValueError):
    """A checkpoint that cannot be used: damaged, cut short, or not one of dynlab's."""


class SettingsMismatchError(DynlabError, ValueError):
    """Finished runs in a folder were made with other settings than the ones asked for."""


class DataError(DynlabError, ValueError):
    """A data file that cannot be used as it is (bad values, a missing class, an unpaired mask)."""


class DeviceError(DynlabError, RuntimeError):
    """A device was asked for that this machine does not have."""


class CellsFailedError(DynlabError, RuntimeError):
    """Some cells of a grid failed; the others are saved, and a re-run retries only the failed ones."""
