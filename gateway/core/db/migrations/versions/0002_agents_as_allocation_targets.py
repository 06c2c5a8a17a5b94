"""agents as allocation targets: cost, currency, eligibility rule and performance per agent

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    """Apply. Server defaults fill the rows that exist already; the ORM sets them after."""
    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "cost_per_contact",
                sa.Numeric(precision=14, scale=4),
                nullable=False,
                server_default="0",
            )
        )
        batch_op.add_column(
            sa.Column("currency", sa.String(length=3), nullable=False, server_default="UAH")
        )
        batch_op.add_column(
            sa.Column("eligibility", _JSON, nullable=False, server_default=sa.text("'{}'"))
        )
        batch_op.add_column(
            sa.Column("performance", _JSON, nullable=False, server_default=sa.text("'{}'"))
        )


def downgrade() -> None:
    """Revert."""
    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.drop_column("performance")
        batch_op.drop_column("eligibility")
        batch_op.drop_column("currency")
        batch_op.drop_column("cost_per_contact")
