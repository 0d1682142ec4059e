"""Change patches (变化图斑): the layer, its history, and its workflow enforced by the database.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30 05:49:42.685913

Generated from layers/defs/change_patches.py and ``change_patch_steps`` (layers/store/schema.py),
then the layer gets what every layer has (``updated_at`` trigger, version trigger of 0008, overview
cells of 0009; the history triggers of 0006 follow at the end of every migration) and the workflow:

- ``change_patch_guard`` (BEFORE INSERT OR UPDATE, per row): a patch is born ``pending`` (an
  upsert's INSERT meeting an existing code is left to its UPDATE); its status
  moves only along ``layers.change_patches.TRANSITIONS`` (SQLSTATE ``LE409`` otherwise, whose DETAIL
  is JSON naming the current status and the allowed next ones); ``status_by`` and ``status_at`` are
  the database's (who from ``landeco.who``, else the database role; today), ``status_note`` is the
  note of the step (NULL when the statement did not set a new one). A statement that leaves the
  status alone cannot change the three: they are kept as they were.
- ``change_patch_step`` (AFTER INSERT OR UPDATE OF status): one row in ``change_patch_steps`` per step.
- ``change_patch_steps`` is append-only: UPDATE and DELETE refused, except the cascade of its
  patch's DELETE (a deleted patch's versions stay in ``change_patches_history``).
"""

from typing import Sequence, Union

from alembic import op
import geoalchemy2
import sqlalchemy as sa
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

revision: str = '0014'
down_revision: Union[str, None] = '0013'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

#: SQLSTATE of a refused step (api/problems.py answers it 409 ``illegal_transition``).
ILLEGAL = "LE409"


def _workflow_sql() -> list[str]:
    from layers.defs.change_patches import LAYER

    flow = LAYER.workflow
    cases = " ".join(f"WHEN '{a}' THEN ARRAY[{', '.join(repr(b) for b in flow.allowed(a))}]::text[]"
                     for a in dict.fromkeys(a for a, _ in flow.transitions))
    return [
        # the day of a step is the township's day (a step at 07:00 in Beijing on 1 July is in H2,
        # whatever the server's time zone); an operator elsewhere sets landeco.timezone on the database
        """
        CREATE FUNCTION landeco_township_day() RETURNS date LANGUAGE sql STABLE AS $$
            SELECT (now() AT TIME ZONE coalesce(nullif(current_setting('landeco.timezone', true), ''),
                                                'Asia/Shanghai'))::date
        $$""",
        f"""
        CREATE FUNCTION change_patch_guard() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            who text := coalesce(nullif(current_setting('landeco.who', true), ''), session_user::text);
            allowed text[];
            note text;
        BEGIN
            IF TG_OP = 'INSERT' THEN
                IF EXISTS (SELECT 1 FROM change_patches WHERE code = NEW.code) THEN
                    -- an upsert meeting its patch (ON CONFLICT): the UPDATE that follows is checked;
                    -- a plain INSERT of a taken code fails on the unique code anyway
                    RETURN NEW;
                END IF;
                IF NEW.status IS DISTINCT FROM '{flow.start}' THEN
                    RAISE EXCEPTION USING ERRCODE = '{ILLEGAL}',
                        MESSAGE = format('a change patch is found {flow.start}, not %s', NEW.status),
                        DETAIL = json_build_object('status', NULL, 'requested', NEW.status,
                                                   'allowed', ARRAY['{flow.start}'])::text;
                END IF;
                NEW.status_by := who;
                NEW.status_at := landeco_township_day();
                RETURN NEW;
            END IF;
            IF NEW.status IS NOT DISTINCT FROM OLD.status THEN
                NEW.status_note := OLD.status_note;
                NEW.status_by := OLD.status_by;
                NEW.status_at := OLD.status_at;
                RETURN NEW;
            END IF;
            allowed := CASE OLD.status {cases} ELSE ARRAY[]::text[] END;
            IF NOT (NEW.status = ANY(allowed)) THEN
                RAISE EXCEPTION USING ERRCODE = '{ILLEGAL}',
                    MESSAGE = format('change patch %s is %s: it cannot become %s', OLD.code, OLD.status, NEW.status),
                    DETAIL = json_build_object('status', OLD.status, 'requested', NEW.status,
                                               'allowed', allowed)::text;
            END IF;
            note := CASE WHEN NEW.status_note IS DISTINCT FROM OLD.status_note THEN NEW.status_note END;
            NEW.status_note := note;
            NEW.status_by := who;
            NEW.status_at := landeco_township_day();
            RETURN NEW;
        END $$""",
        """
        CREATE FUNCTION change_patch_step() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'INSERT' OR NEW.status IS DISTINCT FROM OLD.status THEN
                INSERT INTO change_patch_steps (patch_id, code, from_status, to_status, note, by)
                VALUES (NEW.id, NEW.code, CASE WHEN TG_OP = 'UPDATE' THEN OLD.status END, NEW.status,
                        NEW.status_note, NEW.status_by);
            END IF;
            RETURN NULL;
        END $$""",
        "CREATE TRIGGER change_patch_guard BEFORE INSERT OR UPDATE ON change_patches "
        "FOR EACH ROW EXECUTE FUNCTION change_patch_guard()",
        "CREATE TRIGGER change_patch_step AFTER INSERT OR UPDATE OF status ON change_patches "
        "FOR EACH ROW EXECUTE FUNCTION change_patch_step()",
        # a step is never changed, and goes only with its patch (the foreign key's cascade runs
        # inside the patch's DELETE: trigger depth above 1)
        """
        CREATE FUNCTION change_patch_steps_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'DELETE' AND pg_trigger_depth() > 1 THEN
                RETURN OLD;
            END IF;
            RAISE EXCEPTION 'the steps of change patches are append-only: % refused', TG_OP;
        END $$""",
        "CREATE TRIGGER change_patch_steps_no_update_delete BEFORE UPDATE OR DELETE ON change_patch_steps "
        "FOR EACH ROW EXECUTE FUNCTION change_patch_steps_append_only()",
    ]


def upgrade() -> None:
    # ### commands auto generated by Alembic - please adjust! ###
    op.create_geospatial_table('change_patches_history',
    sa.Column('history_id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('feature_id', sa.BigInteger(), nullable=False),
    sa.Column('operation', sa.Text(), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('valid', postgresql.TSTZRANGE(), nullable=True),
    sa.Column('changed_by', sa.Text(), nullable=True),
    sa.Column('db_user', sa.Text(), server_default=sa.text('session_user'), nullable=False),
    sa.Column('upload_id', sa.Text(), nullable=True),
    sa.Column('edit_id', sa.Text(), nullable=True),
    sa.Column('xact', sa.BigInteger(), server_default=sa.text('txid_current()'), nullable=False),
    sa.Column('code', sa.Text(), nullable=True),
    sa.Column('village_code', sa.Text(), nullable=True),
    sa.Column('kind', sa.Text(), nullable=True),
    sa.Column('mean_change', sa.Double(), nullable=True),
    sa.Column('threshold', sa.Double(), nullable=True),
    sa.Column('before_raster_id', sa.Integer(), nullable=True),
    sa.Column('after_raster_id', sa.Integer(), nullable=True),
    sa.Column('before_date', sa.Date(), nullable=True),
    sa.Column('after_date', sa.Date(), nullable=True),
    sa.Column('detected_on', sa.Date(), nullable=True),
    sa.Column('status', sa.Text(), nullable=True),
    sa.Column('status_note', sa.Text(), nullable=True),
    sa.Column('status_by', sa.Text(), nullable=True),
    sa.Column('status_at', sa.Date(), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('extra', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('geom', Geometry(geometry_type='MULTIPOLYGON', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry'), nullable=True),
    sa.Column('area_m2', sa.Double(), nullable=True),
    sa.Column('area_mu', sa.Double(), nullable=True),
    sa.CheckConstraint("operation IN ('insert', 'update', 'delete')", name=op.f('ck_change_patches_history_operation_domain')),
    sa.PrimaryKeyConstraint('history_id', name=op.f('pk_change_patches_history'))
    )
    op.create_index('ix_change_patches_history_changed_at', 'change_patches_history', ['changed_at'], unique=False)
    op.create_index('ix_change_patches_history_feature_id', 'change_patches_history', ['feature_id', 'history_id'], unique=False)
    op.create_geospatial_table('change_patches',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('code', sa.Text(), nullable=False),
    sa.Column('village_code', sa.Text(), nullable=True),
    sa.Column('kind', sa.Text(), nullable=False),
    sa.Column('mean_change', sa.Double(), nullable=True),
    sa.Column('threshold', sa.Double(), nullable=True),
    sa.Column('before_raster_id', sa.Integer(), nullable=True),
    sa.Column('after_raster_id', sa.Integer(), nullable=True),
    sa.Column('before_date', sa.Date(), nullable=True),
    sa.Column('after_date', sa.Date(), nullable=True),
    sa.Column('detected_on', sa.Date(), nullable=False),
    sa.Column('status', sa.Text(), nullable=False),
    sa.Column('status_note', sa.Text(), nullable=True),
    sa.Column('status_by', sa.Text(), nullable=True),
    sa.Column('status_at', sa.Date(), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('extra', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('geom', Geometry(geometry_type='MULTIPOLYGON', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.Column('area_m2', sa.Double(), sa.Computed('ST_Area(geom::geography, true)', persisted=True), nullable=True),
    sa.Column('area_mu', sa.Double(), sa.Computed('ST_Area(geom::geography, true) / 666.6666666666666', persisted=True), nullable=True),
    sa.CheckConstraint("btrim(code) <> ''", name=op.f('ck_change_patches_code_not_blank')),
    sa.CheckConstraint("kind IN ('loss', 'gain')", name=op.f('ck_change_patches_kind_domain')),
    sa.CheckConstraint("status IN ('pending', 'verified', 'rectified', 'false_alarm')", name=op.f('ck_change_patches_status_domain')),
    sa.CheckConstraint('NOT ST_IsEmpty(geom)', name=op.f('ck_change_patches_geom_not_empty')),
    sa.CheckConstraint('ST_IsValid(geom)', name=op.f('ck_change_patches_geom_valid')),
    sa.CheckConstraint('after_date IS NULL OR before_date IS NULL OR after_date >= before_date', name=op.f('ck_change_patches_after_not_before')),
    sa.CheckConstraint('after_raster_id >= 1', name=op.f('ck_change_patches_after_raster_id_min')),
    sa.CheckConstraint('before_raster_id >= 1', name=op.f('ck_change_patches_before_raster_id_min')),
    sa.CheckConstraint('threshold >= 0', name=op.f('ck_change_patches_threshold_min')),
    sa.ForeignKeyConstraint(['village_code'], ['villages.code'], name=op.f('fk_change_patches_village_code'), onupdate='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_change_patches')),
    sa.UniqueConstraint('code', name=op.f('uq_change_patches_code'))
    )
    op.create_geospatial_index('idx_change_patches_geom', 'change_patches', ['geom'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_index(op.f('ix_change_patches_area_mu'), 'change_patches', ['area_mu'], unique=False)
    op.create_index(op.f('ix_change_patches_village_code'), 'change_patches', ['village_code'], unique=False)
    op.create_table('change_patch_steps',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('patch_id', sa.BigInteger(), nullable=False),
    sa.Column('code', sa.Text(), nullable=False),
    sa.Column('from_status', sa.Text(), nullable=True),
    sa.Column('to_status', sa.Text(), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('by', sa.Text(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('db_user', sa.Text(), server_default=sa.text('session_user'), nullable=False),
    sa.ForeignKeyConstraint(['patch_id'], ['change_patches.id'], name=op.f('fk_change_patch_steps_patch_id'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_change_patch_steps'))
    )
    op.create_index('ix_change_patch_steps_at', 'change_patch_steps', ['at'], unique=False)
    op.create_index('ix_change_patch_steps_patch_id', 'change_patch_steps', ['patch_id', 'id'], unique=False)
    # ### end Alembic commands ###
    from layers.overviews import install_sql
    from layers.registry import get_layer

    op.execute("CREATE TRIGGER change_patches_touch BEFORE UPDATE ON change_patches "
               "FOR EACH ROW EXECUTE FUNCTION landeco_touch_updated_at()")
    op.execute("SELECT landeco_layer_version_trigger('change_patches'::regclass)")
    for statement in install_sql(get_layer("change_patches")):
        op.execute(statement)
    for statement in _workflow_sql():
        op.execute(statement)


def downgrade() -> None:
    from layers.overviews import uninstall_sql
    from layers.registry import get_layer

    for statement in uninstall_sql(get_layer("change_patches")):
        op.execute(statement)
    for table in ("layer_versions", "layer_cells", "layer_cell_codes"):
        op.execute(f"DELETE FROM {table} WHERE layer = 'change_patches'")
    # ### commands auto generated by Alembic - please adjust! ###
    op.drop_index('ix_change_patch_steps_patch_id', table_name='change_patch_steps')
    op.drop_index('ix_change_patch_steps_at', table_name='change_patch_steps')
    op.drop_table('change_patch_steps')
    op.drop_index(op.f('ix_change_patches_village_code'), table_name='change_patches')
    op.drop_index(op.f('ix_change_patches_area_mu'), table_name='change_patches')
    op.drop_geospatial_index('idx_change_patches_geom', table_name='change_patches', postgresql_using='gist', column_name='geom')
    op.drop_geospatial_table('change_patches')
    op.drop_index('ix_change_patches_history_feature_id', table_name='change_patches_history')
    op.drop_index('ix_change_patches_history_changed_at', table_name='change_patches_history')
    op.drop_geospatial_table('change_patches_history')
    # ### end Alembic commands ###
    for function in ("change_patch_guard", "change_patch_step", "change_patch_steps_append_only",
                     "landeco_township_day"):
        op.execute(f"DROP FUNCTION {function}()")
