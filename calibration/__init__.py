"""Calibration of low-cost sensor readings against reference stations (pure numpy, no I/O)."""
