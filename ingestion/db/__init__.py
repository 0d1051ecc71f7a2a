"""Database access: where to connect (``connection``) and the project's own cluster (``embedded``)."""

from ingestion.db.connection import DatabaseUnavailableError, connect, resolve_dsn

__all__ = ["DatabaseUnavailableError", "connect", "resolve_dsn"]
