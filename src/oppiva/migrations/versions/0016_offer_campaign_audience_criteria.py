"""offer campaign audience criteria

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("offer_campaign", sa.Column("audience_criteria", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("offer_campaign") as batch:
        batch.drop_column("audience_criteria")
