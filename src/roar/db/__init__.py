"""ROAR's storage: the one schema and seed definition, migrations and queries."""
