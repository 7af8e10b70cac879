"""Database schema, migrations and connections."""
