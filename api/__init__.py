"""The HTTP API (FastAPI): devices, readings, downloads, maps and the staff dashboard."""
