"""Numbered SQL migrations, applied in order by ``luftnett db migrate``."""
