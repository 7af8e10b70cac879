"""Sensor emulators that speak the real wire protocols on pseudo-terminals."""
