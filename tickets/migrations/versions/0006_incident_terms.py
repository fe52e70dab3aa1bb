"""incident terms: each ticket's deciding rule and significant terms, stored when it is opened (issue 17)

Why: matching a new report against the open reports of its topic read each candidate's classification
(JSON) and first message for every report; a storm of one problem was drained at ~16 msg/s. Tickets
opened before this revision keep NULL and are read the old way.

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tickets') as batch:
        batch.add_column(sa.Column('incident_rule', sa.Text(), nullable=True))
        batch.add_column(sa.Column('incident_terms', sa.Text(), nullable=True))
        batch.create_index('ix_tickets_incident_id_id', ['incident_id', 'id'])
        batch.create_index('ix_tickets_incident_answered', ['incident_id', 'first_response_at'])
        batch.create_index('ix_tickets_role_created', ['role', 'created_at', 'id'])


def downgrade() -> None:
    with op.batch_alter_table('tickets') as batch:
        batch.drop_index('ix_tickets_role_created')
        batch.drop_index('ix_tickets_incident_answered')
        batch.drop_index('ix_tickets_incident_id_id')
        batch.drop_column('incident_terms')
        batch.drop_column('incident_rule')
