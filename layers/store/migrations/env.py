"""Alembic environment: the registry's metadata, PostGIS-aware autogenerate."""

from alembic import context
from geoalchemy2 import alembic_helpers
from sqlalchemy import create_engine, pool, text

from layers.store.migrate import include_object
from layers.store.schema import metadata

config = context.config


def run_migrations_online() -> None:  # noqa: D103
    connection = config.attributes.get("connection")
    if connection is None:
        engine = create_engine(config.get_main_option("sqlalchemy.url"), poolclass=pool.NullPool)
        with engine.connect() as conn:
            _run(conn)
        engine.dispose()
    else:
        _run(connection)


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        include_object=include_object,
        process_revision_directives=alembic_helpers.writer,
        render_item=alembic_helpers.render_item,
    )
    with context.begin_transaction():
        context.run_migrations()
        # every layer table with a history table is followed, also layers added after 0006
        if connection.scalar(text("SELECT to_regprocedure('landeco_history_follow_all()')")) is not None:
            connection.execute(text("SELECT landeco_history_follow_all()"))


run_migrations_online()
