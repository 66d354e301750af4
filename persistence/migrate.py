"""Schema management through Alembic (placeholder until the migrations land)."""

from __future__ import annotations

from persistence.database import Database
from persistence.models import Base


def upgrade(db: Database, revision: str = "head") -> None:
    """Bring the schema to ``revision``."""
    Base.metadata.create_all(db.engine)
