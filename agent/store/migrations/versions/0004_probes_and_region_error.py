"""probes and region error

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("experiment", schema=None) as batch_op:
        batch_op.add_column(sa.Column("probe", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    with op.batch_alter_table("modelrun", schema=None) as batch_op:
        batch_op.add_column(sa.Column("region_cv_rmse", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("modelrun", schema=None) as batch_op:
        batch_op.drop_column("region_cv_rmse")
    with op.batch_alter_table("experiment", schema=None) as batch_op:
        batch_op.drop_column("probe")
