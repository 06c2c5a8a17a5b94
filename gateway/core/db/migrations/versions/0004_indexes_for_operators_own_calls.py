"""indexes for an operator's own calls: calls by agent, call legs by extension

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07

An operator lists only the calls recorded as its agent's or that rang or reached one of
its extensions, a transfer leg included (gateway/calls/access.py): each of those ways is
an index lookup with these two indexes, a read of the whole table without them. With
them bench/bench_call_listing.py measured a page on 200,000 calls at 14 to 19 ms for
operators with 2 % to 50 % of the calls and 11 ms for one with none (an admin's
unfiltered page: 7 ms; median of three runs, load average 12 on two cores). Like 0003's
index they are built inside the migration's transaction; on a large live table build
them first with CREATE INDEX CONCURRENTLY under the same names.
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply."""
    op.create_index("ix_calls_agent_id", "calls", ["agent_id"], if_not_exists=True)
    op.create_index("ix_call_legs_extension", "call_legs", ["extension"], if_not_exists=True)


def downgrade() -> None:
    """Revert."""
    op.drop_index("ix_call_legs_extension", table_name="call_legs")
    op.drop_index("ix_calls_agent_id", table_name="calls")
