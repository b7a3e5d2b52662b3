"""Alembic migrations of the visual log (run at start-up by ``core.storage.migrate``)."""
