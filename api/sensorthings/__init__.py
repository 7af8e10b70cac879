"""A read-only OGC SensorThings API (v1.1) facade over luftnett's tables (docs/sensorthings.md)."""

from luftnett.api.sensorthings.router import CONFORMANCE, PREFIX, router

__all__ = ["CONFORMANCE", "PREFIX", "router"]
