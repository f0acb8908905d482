"""Alembic migrations, shipped inside the package so `agent-studio migrate` works anywhere."""
