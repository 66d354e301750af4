"""WebSocket tickets remember when the access token they were obtained with expires.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 01:40:00.000000+00:00

A connection opened with a ticket holds the credential the ticket stands for:
it must end (4419, or ``reauth``) when that access token would have, not one
full access-token lifetime after the ticket is used. Nullable: tickets issued
before this revision (30 s of them at most) fall back to the old rule.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from sessionflow.persistence.types import UTCDateTime

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("ws_tickets") as batch:
        batch.add_column(sa.Column("credential_expires_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ws_tickets") as batch:
        batch.drop_column("credential_expires_at")
