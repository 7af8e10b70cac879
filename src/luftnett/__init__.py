"""luftnett: an open-source air-quality microsensor network."""

__version__ = "0.1.0"
__all__ = ["__version__"]
