"""Per-address WebSocket caps counted in the store; tickets remember the token generation they stand for.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 21:45:00.000000+00:00

``ix_connections_remote_addr_state``: every worker counts a client address's open connections in
the store (the cap held per worker only). ``ws_tickets.token_generation``: a ticket obtained before
a refresh stands for a token the refresh superseded, and no longer opens a socket. Nullable:
tickets issued before this revision (30 s of them at most) are not checked.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("ws_tickets") as batch:
        batch.add_column(sa.Column("token_generation", sa.Integer(), nullable=True))
    op.create_index("ix_connections_remote_addr_state", "connections", ["remote_addr", "state"])


def downgrade() -> None:
    op.drop_index("ix_connections_remote_addr_state", table_name="connections")
    with op.batch_alter_table("ws_tickets") as batch:
        batch.drop_column("token_generation")
