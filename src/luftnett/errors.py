"""The one exception tree of luftnett.

    LuftnettError
    ├── ConfigError        a setting or a config file is wrong
    ├── FrameError         sensor bytes could not be decoded (readers count these, never raise)
    ├── PayloadError       an MQTT payload breaks the contract (the collector quarantines it)
    ├── CalibrationError   a model cannot be fitted or applied
    ├── StorageError       the database refused or cannot be reached
    ├── ServiceError       an embedded server (PostgreSQL, Mosquitto) could not be started
    ├── MappingError       bad points, grids or parameters for a map
    └── PublishError       the open-data archive cannot be written or read

A message says what happened, the value, and what to do. The CLI prints one as a single
stderr line and exits 1; the API maps it to JSON in one handler.
"""

from __future__ import annotations

__all__ = [
    "CalibrationError",
    "ConfigError",
    "FrameError",
    "LuftnettError",
    "MappingError",
    "PayloadError",
    "PublishError",
    "ServiceError",
    "StorageError",
]


class LuftnettError(Exception):
    """Base class of every error luftnett raises on purpose."""


class ConfigError(LuftnettError):
    """A setting, an environment variable or a config file is wrong."""


class FrameError(LuftnettError):
    """Bytes from a sensor could not be decoded; ``category`` names why."""

    def __init__(self, category: str, message: str) -> None:
        super().__init__(message)
        self.category = category


class PayloadError(LuftnettError):
    """An MQTT payload breaks the contract; ``reason`` is a short machine-readable code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class CalibrationError(LuftnettError):
    """A calibration model cannot be fitted, evaluated or applied."""


class StorageError(LuftnettError):
    """The database refused a statement or cannot be reached."""


class ServiceError(LuftnettError):
    """An embedded server could not be started, found or stopped."""


class MappingError(LuftnettError):
    """Input to a map is unusable: missing columns, too few points, duplicates, bad CRS."""


class PublishError(LuftnettError):
    """The open-data archive (``luftnett publish``) cannot be written or read."""
