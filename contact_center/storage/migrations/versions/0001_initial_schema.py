"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-29 09:52:05.760614
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('calling_lists',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('key_field', sa.String(length=40), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_calling_lists')),
    sa.UniqueConstraint('name', name=op.f('uq_calling_lists_name'))
    )
    op.create_table('campaigns',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('time_zone', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaigns')),
    sa.UniqueConstraint('name', name=op.f('uq_campaigns_name'))
    )
    op.create_table('exclusion_lists',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('match_field', sa.String(length=40), nullable=False),
    sa.Column('case_sensitive', sa.Boolean(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_exclusion_lists')),
    sa.UniqueConstraint('name', name=op.f('uq_exclusion_lists_name'))
    )
    op.create_table('call_attempts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('list_id', sa.Integer(), nullable=True),
    sa.Column('record_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('record_key', sa.String(length=200), nullable=True),
    sa.Column('phone', sa.String(length=20), nullable=True),
    sa.Column('attempted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('is_call_attempt', sa.Boolean(), nullable=False),
    sa.Column('completed', sa.Boolean(), nullable=False),
    sa.Column('record_disposition', sa.String(length=100), nullable=True),
    sa.Column('record_disposition_code', sa.String(length=40), nullable=True),
    sa.Column('call_disposition', sa.String(length=100), nullable=True),
    sa.Column('call_disposition_code', sa.String(length=40), nullable=True),
    sa.Column('out_of_quota', sa.Boolean(), nullable=False),
    sa.Column('call_note', sa.Text(), nullable=True),
    sa.Column('global_interaction_id', sa.String(length=64), nullable=True),
    sa.Column('action_applied', sa.String(length=100), nullable=True),
    sa.Column('agent', sa.String(length=100), nullable=True),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_call_attempts_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_call_attempts'))
    )
    with op.batch_alter_table('call_attempts', schema=None) as batch_op:
        batch_op.create_index('ix_call_attempts_campaign_attempted', ['campaign_id', 'attempted_at'], unique=False)
        batch_op.create_index('ix_call_attempts_campaign_recorded', ['campaign_id', 'recorded_at'], unique=False)

    op.create_table('campaign_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('action', sa.String(length=20), nullable=False),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('flow_run_id', sa.String(length=64), nullable=True),
    sa.Column('result', sa.String(length=100), nullable=False),
    sa.Column('notified', sa.Boolean(), nullable=True),
    sa.Column('message', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_campaign_events_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaign_events'))
    )
    op.create_table('campaign_exclusion_lists',
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('exclusion_list_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_campaign_exclusion_lists_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['exclusion_list_id'], ['exclusion_lists.id'], name=op.f('fk_campaign_exclusion_lists_exclusion_list_id_exclusion_lists'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('campaign_id', 'exclusion_list_id', name=op.f('pk_campaign_exclusion_lists'))
    )
    op.create_table('campaign_lists',
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('list_id', sa.Integer(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_campaign_lists_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['list_id'], ['calling_lists.id'], name=op.f('fk_campaign_lists_list_id_calling_lists'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('campaign_id', 'list_id', name=op.f('pk_campaign_lists'))
    )
    op.create_table('exclusion_imports',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('exclusion_list_id', sa.Integer(), nullable=False),
    sa.Column('step', sa.String(length=20), nullable=False),
    sa.Column('file_name', sa.Text(), nullable=True),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.Column('bytes', sa.BigInteger(), nullable=False),
    sa.Column('update_policy', sa.String(length=20), nullable=True),
    sa.Column('keys_read', sa.Integer(), nullable=False),
    sa.Column('added', sa.Integer(), nullable=False),
    sa.Column('renewed', sa.Integer(), nullable=False),
    sa.Column('removed', sa.Integer(), nullable=False),
    sa.Column('rejected', sa.Integer(), nullable=False),
    sa.Column('duplicates', sa.Integer(), nullable=False),
    sa.Column('flow_run_id', sa.String(length=64), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['exclusion_list_id'], ['exclusion_lists.id'], name=op.f('fk_exclusion_imports_exclusion_list_id_exclusion_lists'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_exclusion_imports'))
    )
    op.create_table('exclusions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('exclusion_list_id', sa.Integer(), nullable=False),
    sa.Column('key_value', sa.String(length=200), nullable=False),
    sa.Column('added_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('renewed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['exclusion_list_id'], ['exclusion_lists.id'], name=op.f('fk_exclusions_exclusion_list_id_exclusion_lists'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_exclusions')),
    sa.UniqueConstraint('exclusion_list_id', 'key_value', name=op.f('uq_exclusions_exclusion_list_id'))
    )
    op.create_table('export_watermarks',
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('destination', sa.String(length=500), nullable=False),
    sa.Column('watermark', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_export_watermarks_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('campaign_id', 'destination', name=op.f('pk_export_watermarks'))
    )
    op.create_table('list_imports',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('list_id', sa.Integer(), nullable=False),
    sa.Column('file_name', sa.Text(), nullable=False),
    sa.Column('location', sa.Text(), nullable=True),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('bytes', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('update_policy', sa.String(length=20), nullable=True),
    sa.Column('rows_read', sa.Integer(), nullable=False),
    sa.Column('loaded', sa.Integer(), nullable=False),
    sa.Column('updated', sa.Integer(), nullable=False),
    sa.Column('unchanged', sa.Integer(), nullable=False),
    sa.Column('removed', sa.Integer(), nullable=False),
    sa.Column('rejected', sa.Integer(), nullable=False),
    sa.Column('excluded', sa.Integer(), nullable=False),
    sa.Column('flow_run_id', sa.String(length=64), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['list_id'], ['calling_lists.id'], name=op.f('fk_list_imports_list_id_calling_lists'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_list_imports'))
    )
    with op.batch_alter_table('list_imports', schema=None) as batch_op:
        batch_op.create_index('ix_list_imports_list_sha', ['list_id', 'sha256'], unique=False)

    op.create_table('list_records',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('list_id', sa.Integer(), nullable=False),
    sa.Column('record_key', sa.String(length=200), nullable=False),
    sa.Column('account', sa.String(length=200), nullable=True),
    sa.Column('phone1', sa.String(length=20), nullable=True),
    sa.Column('phone2', sa.String(length=20), nullable=True),
    sa.Column('phone3', sa.String(length=20), nullable=True),
    sa.Column('phone4', sa.String(length=20), nullable=True),
    sa.Column('phone5', sa.String(length=20), nullable=True),
    sa.Column('phone6', sa.String(length=20), nullable=True),
    sa.Column('phone7', sa.String(length=20), nullable=True),
    sa.Column('phone8', sa.String(length=20), nullable=True),
    sa.Column('phone9', sa.String(length=20), nullable=True),
    sa.Column('phone10', sa.String(length=20), nullable=True),
    sa.Column('first_name', sa.Text(), nullable=True),
    sa.Column('last_name', sa.Text(), nullable=True),
    sa.Column('zip', sa.String(length=40), nullable=True),
    sa.Column('state', sa.String(length=40), nullable=True),
    sa.Column('timezone', sa.String(length=64), nullable=True),
    sa.Column('priority', sa.String(length=40), nullable=True),
    sa.Column('call_at', sa.String(length=64), nullable=True),
    sa.Column('custom_fields', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('import_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
    # No foreign key on list_id: see ListRecord in contact_center/storage/models.py.
    sa.PrimaryKeyConstraint('id', name=op.f('pk_list_records')),
    sa.UniqueConstraint('list_id', 'record_key', name=op.f('uq_list_records_list_id'))
    )
    op.create_table('results_exports',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('destination', sa.String(length=500), nullable=False),
    sa.Column('file_name', sa.Text(), nullable=True),
    sa.Column('format', sa.String(length=20), nullable=False),
    sa.Column('window_start', sa.DateTime(timezone=True), nullable=True),
    sa.Column('window_end', sa.DateTime(timezone=True), nullable=False),
    sa.Column('rows', sa.BigInteger(), nullable=False),
    sa.Column('bytes', sa.BigInteger(), nullable=False),
    sa.Column('flow_run_id', sa.String(length=64), nullable=True),
    sa.Column('exported_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=20), server_default='delivered', nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_results_exports_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_results_exports'))
    )



def downgrade() -> None:

    op.drop_table('results_exports')
    op.drop_table('list_records')
    with op.batch_alter_table('list_imports', schema=None) as batch_op:
        batch_op.drop_index('ix_list_imports_list_sha')

    op.drop_table('list_imports')
    op.drop_table('export_watermarks')
    op.drop_table('exclusions')
    op.drop_table('exclusion_imports')
    op.drop_table('campaign_lists')
    op.drop_table('campaign_exclusion_lists')
    op.drop_table('campaign_events')
    with op.batch_alter_table('call_attempts', schema=None) as batch_op:
        batch_op.drop_index('ix_call_attempts_campaign_recorded')
        batch_op.drop_index('ix_call_attempts_campaign_attempted')

    op.drop_table('call_attempts')
    op.drop_table('exclusion_lists')
    op.drop_table('campaigns')
    op.drop_table('calling_lists')

