"""Collection for ``--doctest-modules``: Alembic's scripts run only under Alembic."""

collect_ignore = ["layers/store/migrations"]
