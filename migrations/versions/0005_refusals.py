"""Refused events are kept, for the inspector's session page and its rates by outcome.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 21:20:00.000000+00:00

A refusal rolls back the transaction that met it, so until now only a log
line and a counter remembered it. The table is append-only, written in
batches after the refusal, and ordered across instances by ``id``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from sessionflow.persistence.types import UTCDateTime

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "refusals",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("machine", sa.String(length=32), nullable=False),
        sa.Column("instance_id", sa.Uuid(), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refusals")),
    )
    op.create_index(op.f("ix_refusals_instance_id"), "refusals", ["instance_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_refusals_instance_id"), table_name="refusals")
    op.drop_table("refusals")
