"""The permission table: every route declared, and every route answering as the README says.

The README's two tables (what each level lets through; what each route needs) are parsed
here, compared with ``api.permissions.PERMISSIONS`` and with the application's own route
table, then every route is called anonymously and with a token of every role.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import URL

from api.app import api_routes, create_app
from api.permissions import PERMISSIONS, required_role
from layers import accounts
from layers.settings import Settings
from layers.store.database import engine_for
from tests.conftest import TEST_BASE, UNLIMITED

README = Path(__file__).resolve().parents[2] / "README.md"
WHO = ("anonymous", "viewer", "surveyor", "planner", "admin")
#: Values for path parameters: cheap answers (mostly 404) once a request is let through.
PARAMS = {"collection_id": "no_such_layer", "layer_id": "no_such_layer", "feature_id": "1",
          "tms": "WebMercatorQuad", "z": "0", "x": "0", "y": "0", "code": "no_such_village",
          "fmt": "png", "check_id": "no_such_check", "upload_id": "0" * 32, "job_id": "999999",
          "version": "1", "raster_id": "999999"}


def _rows(text: str, header: str) -> list[list[str]]:
    """The rows of the Markdown table whose header line starts with ``header``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip().strip("`") for c in line.strip().strip("|").split("|")])
    return rows


def readme_routes() -> dict[tuple[str, str], str]:
    return {(m, p): level for m, p, level in _rows(README.read_text("utf-8"), "| method | route | needs |")}


def readme_levels() -> dict[str, dict[str, bool]]:
    rows = _rows(README.read_text("utf-8"), "| level | anonymous |")
    return {r[0]: dict(zip(WHO, (c == "yes" for c in r[1:]), strict=True)) for r in rows}


def test_every_route_declares_its_permission():
    app = create_app(Settings())
    routes = {(m, r.path) for r in api_routes(app) for m in r.methods}
    undeclared = sorted(routes - set(PERMISSIONS))
    assert undeclared == [], f"routes without a permission in api/permissions.py: {undeclared}"
    stale = sorted(set(PERMISSIONS) - routes - {("GET", "/api")})
    assert stale == [], f"permissions of routes that do not exist: {stale}"


def test_the_readme_table_is_the_permission_table():
    assert readme_routes() == PERMISSIONS


def test_the_readme_levels_are_what_the_defaults_enforce():
    settings = Settings()
    for level, allowed in readme_levels().items():
        need = required_role(level, settings)
        for who in WHO:
            holder = None if who == "anonymous" else accounts.Principal(who, frozenset({who}))
            expected = need is None or (holder is not None and holder.has(need))
            assert allowed[who] == expected, (level, who)


@pytest.fixture(scope="module")
def perm_url(new_database) -> Iterator[URL]:
    """An empty migrated database with one account per role, each with a token."""
    with new_database("landeco_test_perm") as url:
        yield url


@pytest.fixture(scope="module")
def tokens(perm_url) -> dict[str, dict[str, str]]:
    engine = engine_for(perm_url.render_as_string(hide_password=False))
    out: dict[str, dict[str, str]] = {"anonymous": {}}
    for role in WHO[1:]:
        accounts.add_user(engine=engine, name=f"only-{role}", roles=[role], password="matrix-password")
        _, token = accounts.create_token(engine=engine, name=f"only-{role}")
        out[role] = {"Authorization": f"Bearer {token}"}
    return out


def _call(client: TestClient, method: str, path: str, headers: dict[str, str]) -> int:
    url = re.sub(r"\{(\w+)\}", lambda m: PARAMS[m.group(1)], path)
    return client.request(method, url, headers={**headers, "Accept": "application/json"},
                          follow_redirects=False).status_code


@pytest.mark.parametrize("strict", [False, True], ids=["defaults", "closed"])
def test_every_route_with_every_role(perm_url, tokens, tmp_path, strict):
    """Defaults as in the README; ``closed``: no public read, planner-only exports."""
    options = {"public_read": False, "planner_only_exports": True} if strict else {}
    settings = Settings(database_url=perm_url.render_as_string(hide_password=False), home=tmp_path,
                        **UNLIMITED, **options)
    levels = readme_levels()
    wrong = []
    with TestClient(create_app(settings), base_url=TEST_BASE) as client:
        for (method, path), level in readme_routes().items():
            need = required_role(level, settings)
            for who in WHO:
                holder = None if who == "anonymous" else accounts.Principal(who, frozenset({who}))
                allowed = levels[level][who] if not strict else (
                    need is None or (holder is not None and holder.has(need)))
                status = _call(client, method, path, tokens[who])
                expected = "let through" if allowed else ("401" if who == "anonymous" else "403")
                got = ("401" if status == 401 else "403" if status == 403 else "let through")
                if got != expected:
                    wrong.append(f"{method} {path} as {who}: {status}, expected {expected}")
    assert wrong == []


def test_strict_settings_really_close_the_reads(perm_url, tmp_path):
    settings = Settings(database_url=perm_url.render_as_string(hide_password=False), home=tmp_path,
                        public_read=False, **UNLIMITED)
    with TestClient(create_app(settings), base_url=TEST_BASE) as client:
        page = client.get("/collections?f=html", follow_redirects=False)
        assert page.status_code == 303
        assert page.headers["location"] == f"{TEST_BASE}/login?next=%2Fcollections%3Ff%3Dhtml"
        api = client.get("/collections/villages/items")
        assert api.status_code == 401 and api.json()["code"] == "authentication_required"
        assert api.headers["content-type"] == "application/problem+json"
        assert client.get("/health").status_code == 200
        assert client.get("/login").status_code == 200
