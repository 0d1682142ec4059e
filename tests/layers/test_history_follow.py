"""The history follows every layer table, also one added by a later migration."""

from __future__ import annotations

import sqlalchemy as sa

from layers.store.database import engine_for
from layers.store.migrate import upgrade


def test_a_layer_table_added_later_is_followed_after_migrating(new_database):
    with new_database("landeco_test_follow") as url:
        engine = engine_for(url.render_as_string(hide_password=False))
        with engine.begin() as conn:  # what a later layer's migration creates: the table and its history
            conn.execute(sa.text("CREATE TABLE late_plots (LIKE caragana_plots INCLUDING ALL)"))
            conn.execute(sa.text(
                "CREATE TABLE late_plots_history (LIKE caragana_plots_history INCLUDING ALL)"))
        upgrade(url)  # landeco db migrate
        with engine.begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO late_plots (id, code, planted_year, method, geom) VALUES (1, 'L-1', 2020, "
                "'restoration', ST_Multi(ST_MakeEnvelope(107.5, 38.1, 107.501, 38.101, 4326)))"))
            conn.execute(sa.text("UPDATE late_plots SET seedlings = 9"))
            rows = conn.execute(sa.text("SELECT operation, code, seedlings FROM late_plots_history "
                                        "ORDER BY history_id")).all()
        assert rows == [("insert", None, None), ("update", "L-1", None)]


def test_a_transaction_of_many_statements_is_recorded_statement_by_statement(new_database):
    with new_database("landeco_test_follow2") as url:
        engine = engine_for(url.render_as_string(hide_password=False))
        with engine.begin() as conn:
            conn.execute(sa.text("SELECT set_config('landeco.who', '巴图', true)"))
            conn.execute(sa.text(
                "INSERT INTO caragana_plots (code, planted_year, method, geom) SELECT 'P-' || i, 2020, "
                "'restoration', ST_Multi(ST_MakeEnvelope(107.5 + i * 0.01, 38.1, 107.505 + i * 0.01, 38.105, "
                "4326)) FROM generate_series(1, 50) i"))
            conn.execute(sa.text("UPDATE caragana_plots SET seedlings = 1 WHERE code <= 'P-3'"))
            conn.execute(sa.text("DELETE FROM caragana_plots WHERE code = 'P-1'"))
            conn.execute(sa.text("TRUNCATE caragana_plots"))
        with engine.connect() as conn:
            counts = dict(conn.execute(sa.text(
                "SELECT operation, count(*) FROM caragana_plots_history GROUP BY 1")).all())
            who = set(conn.scalars(sa.text("SELECT DISTINCT changed_by FROM caragana_plots_history")))
        # 50 inserts; P-1, P-10…P-19, P-2, P-20…P-29, P-3 updated (23); one deleted, then 49 truncated
        assert counts == {"insert": 50, "update": 23, "delete": 50}
        assert who == {"巴图"}
