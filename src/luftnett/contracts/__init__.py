"""Shared contracts: each defined once, imported by every side that speaks it."""
