"""Signing in: sessions and their expiry, CSRF on every form, tokens, disabled accounts, the delay."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import URL
from typer.testing import CliRunner

from api.app import create_app
from api.cli import app as cli
from api.permissions import FORMS, SESSION_COOKIE
from layers import accounts
from layers.settings import Settings
from layers.store.database import engine_for
from tests.conftest import TEST_BASE, UNLIMITED

PASSWORD = "correct-horse-battery-9"


@pytest.fixture(scope="module")
def auth_url(new_database) -> Iterator[URL]:
    with new_database("landeco_test_auth") as url:
        yield url


@pytest.fixture(scope="module")
def engine(auth_url) -> sa.Engine:
    return engine_for(auth_url.render_as_string(hide_password=False))


_n = iter(range(10_000))


@pytest.fixture
def user(engine) -> str:
    """A fresh surveyor (its own name, so that the sign-in counters of one test stay apart)."""
    name = f"surveyor-{next(_n)}"
    accounts.add_user(engine=engine, name=name, roles=["surveyor"], password=PASSWORD)
    return name


def _client(url: URL, tmp_path, **options) -> TestClient:
    settings = Settings(database_url=url.render_as_string(hide_password=False), home=tmp_path,
                        **{**UNLIMITED, **options})
    return TestClient(create_app(settings), base_url=TEST_BASE)


@pytest.fixture
def client(auth_url, tmp_path) -> Iterator[TestClient]:
    with _client(auth_url, tmp_path) as c:
        yield c


def _login_csrf(client: TestClient, lang: str = "zh") -> str:
    page = client.get(f"/login?lang={lang}")
    assert page.status_code == 200
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


def sign_in(client: TestClient, name: str, password: str = PASSWORD):
    token = _login_csrf(client)
    return client.post("/login", data={"username": name, "password": password, "csrf_token": token,
                                       "next": "/uploads"}, follow_redirects=False)


def _page_csrf(client: TestClient) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get("/uploads").text).group(1)


# -- sign-in and the pages -----------------------------------------------------------------------

def test_sign_in_sets_a_guarded_cookie_and_the_page_shows_who(client, user):
    form = client.get("/login")
    assert "用户名" in form.text and "密码" in form.text
    assert "User name" in client.get("/login?lang=en").text
    res = sign_in(client, user)
    assert res.status_code == 303 and res.headers["location"] == f"{TEST_BASE}/uploads"
    cookie = res.headers["set-cookie"]
    assert f"{SESSION_COOKIE}=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Secure" not in cookie  # plain http here; https below
    page = client.get("/uploads")
    assert page.status_code == 200 and f'id="signed-in">{user}<' in page.text
    assert "/uploads/new" in page.text  # a surveyor sees the upload link


def test_the_cookie_is_secure_behind_https(auth_url, tmp_path, user):
    with _client(auth_url, tmp_path, public_url="https://landeco.example.gov.cn") as c:
        assert "Secure" in sign_in(c, user).headers["set-cookie"]


def test_a_viewer_does_not_see_the_upload_link_and_a_visitor_sees_sign_in(client, engine):
    accounts.add_user(engine=engine, name="just-a-viewer", roles=["viewer"], password=PASSWORD)
    anonymous = client.get("/?f=html").text
    assert 'id="sign-in-link"' in anonymous and "/uploads/new" not in anonymous
    sign_in(client, "just-a-viewer")
    home = client.get("/?f=html").text
    assert 'id="signed-in">just-a-viewer<' in home and "/uploads/new" not in home
    assert client.get("/uploads", headers={"Accept": "application/json"}).json()["code"] == "forbidden"


def test_wrong_password_and_unknown_user_get_the_same_answer(client, user):
    wrong = sign_in(client, user, "not-the-password")
    unknown = sign_in(client, "nobody-at-all", "not-the-password")
    assert wrong.status_code == unknown.status_code == 401
    assert "用户名或密码错误" in wrong.text and "用户名或密码错误" in unknown.text
    assert SESSION_COOKIE not in wrong.headers.get("set-cookie", "")


def test_next_never_leaves_the_site(client, user):
    token = _login_csrf(client)
    res = client.post("/login", data={"username": user, "password": PASSWORD, "csrf_token": token,
                                      "next": "//evil.example/x"}, follow_redirects=False)
    assert res.headers["location"] == f"{TEST_BASE}/"


def test_sign_out_ends_the_session(client, user):
    sign_in(client, user)
    csrf = _page_csrf(client)
    assert client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False).status_code == 303
    client.cookies.clear()  # even a kept copy of the cookie is dead
    assert client.get("/uploads", headers={"Accept": "application/json"}).status_code == 401


# -- CSRF ----------------------------------------------------------------------------------------

def test_every_form_refuses_a_missing_or_wrong_token(client, user):
    sign_in(client, user)
    good = _page_csrf(client)
    forms = {"/uploads/form": {"layer": "caragana_plots"}, "/logout": {},
             "/uploads/{upload_id}/commit/form": {},
             "/rasters/form": {"kind": "ndvi", "acquired": "2022-07-15"}}
    assert {p for _, p in FORMS} == {*forms, "/login"}
    for path, data in forms.items():
        url = path.replace("{upload_id}", "0" * 32)
        files = {"file": ("a.geojson", b"{}")} if path in ("/uploads/form", "/rasters/form") else None
        for token in (None, "wrong-" + good):
            body = {**data, **({"csrf_token": token} if token else {})}
            res = client.post(url, data=body, files=files)
            assert res.status_code == 403 and res.json()["code"] == "csrf_failed", (path, token)
    # with the page's token the commit form gets past the check (to "no such upload")
    res = client.post("/uploads/" + "0" * 32 + "/commit/form", data={"csrf_token": good})
    assert res.status_code == 404
    # a signed-in browser's JSON write needs the header
    assert client.post("/uploads/" + "0" * 32 + "/commit").json()["code"] == "csrf_failed"
    assert client.post("/uploads/" + "0" * 32 + "/commit", headers={"X-CSRF-Token": good}).status_code == 404


def test_the_login_form_refuses_a_missing_or_wrong_token(client, user):
    _login_csrf(client)
    for token in (None, "forged"):
        data = {"username": user, "password": PASSWORD, **({"csrf_token": token} if token else {})}
        res = client.post("/login", data=data, follow_redirects=False)
        assert res.status_code == 403 and SESSION_COOKIE not in res.headers.get("set-cookie", "")


# -- expiry --------------------------------------------------------------------------------------

def test_an_idle_session_ends(auth_url, tmp_path, user):
    with _client(auth_url, tmp_path, session_idle_seconds=1.5) as c:
        sign_in(c, user)
        assert c.get("/uploads").status_code == 200
        time.sleep(2)
        assert c.get("/uploads", headers={"Accept": "application/json"}).status_code == 401


def test_a_session_ends_at_its_absolute_limit_even_when_used(auth_url, tmp_path, user):
    with _client(auth_url, tmp_path, session_max_seconds=3, session_idle_seconds=1) as c:
        started = time.monotonic()
        sign_in(c, user)
        while time.monotonic() - started < 2.2:  # used all along: never idle
            assert c.get("/uploads").status_code == 200
            time.sleep(0.2)
        secret = c.cookies[SESSION_COOKIE]
        time.sleep(max(0.0, 3.2 - (time.monotonic() - started)))
        c.cookies.set(SESSION_COOKIE, secret)  # a client that keeps the cookie past its max-age
        assert c.get("/uploads", headers={"Accept": "application/json"}).status_code == 401


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_token_expires(client, engine, user):
    _, token = accounts.create_token(engine=engine, name=user, expires_days=1.5 / 86400)
    assert client.get("/uploads", headers=_bearer(token)).status_code == 200
    time.sleep(2)
    res = client.get("/uploads", headers=_bearer(token))
    assert res.status_code == 401 and res.json()["code"] == "authentication_required"


def test_a_revoked_token_stops_at_once_even_on_open_routes(client, engine, user):
    token_id, token = accounts.create_token(engine=engine, name=user, label="script")
    assert client.get("/collections", headers=_bearer(token)).status_code == 200
    accounts.revoke_token(engine=engine, token_id=token_id)
    assert client.get("/collections", headers=_bearer(token)).status_code == 401
    assert client.get("/collections").status_code == 200  # without it: a visitor, who may read


def test_last_use_is_recorded_without_a_write_per_request(client, engine, user):
    _, token = accounts.create_token(engine=engine, name=user)
    for _ in range(3):
        client.get("/collections", headers=_bearer(token))
    [row] = accounts.list_tokens(engine=engine, name=user)
    assert row["last_used_at"] is not None
    first = row["last_used_at"]
    client.get("/collections", headers=_bearer(token))
    assert accounts.list_tokens(engine=engine, name=user)[0]["last_used_at"] == first  # within the minute


def test_a_change_made_elsewhere_reaches_the_token_cache_within_a_moment(client, engine, user):
    """As ``landeco users disable`` in another process: only the NOTIFY tells this one."""
    _, token = accounts.create_token(engine=engine, name=user)
    cache = client.app.state.token_cache
    deadline = time.monotonic() + 10
    while not cache.live and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.get("/uploads", headers=_bearer(token)).status_code == 200
    assert accounts.token_hash(token) in cache.entries  # the next request costs no query
    with engine.begin() as conn:  # not through layers.accounts: this process's caches are not told
        conn.execute(sa.text("UPDATE users SET disabled = true WHERE name = :n"), {"n": user})
        conn.execute(sa.text("SELECT pg_notify(:c, '')"), {"c": accounts.CHANNEL})
    started = time.monotonic()
    while client.get("/uploads", headers=_bearer(token)).status_code == 200:
        assert time.monotonic() - started < 1, "the disabled account's token still works"
        time.sleep(0.01)


def test_a_disabled_account_stops_at_once(client, engine, user):
    _, token = accounts.create_token(engine=engine, name=user)
    sign_in(client, user)
    assert client.get("/uploads").status_code == 200
    assert client.get("/uploads", headers=_bearer(token)).status_code == 200
    accounts.set_disabled(engine=engine, name=user)
    assert client.get("/uploads", headers={"Accept": "application/json"}).status_code == 401
    assert client.get("/uploads", headers=_bearer(token)).status_code == 401
    assert sign_in(client, user).status_code == 401


# -- the growing delay -------------------------------------------------------------------------

def test_failed_sign_ins_make_the_account_wait_longer_and_longer(engine, user):
    def fail() -> None:
        with pytest.raises(accounts.InvalidCredentialsError):
            accounts.authenticate(engine=engine, name=user, password="wrong-password", address=None)

    for _ in range(accounts.FREE_FAILURES["user"]):
        fail()  # free
    fail()  # the first costly one: a 1 s wait
    with pytest.raises(accounts.LoginThrottledError) as first:
        accounts.authenticate(engine=engine, name=user, password=PASSWORD, address=None)  # even right
    time.sleep(1.1)
    fail()
    with pytest.raises(accounts.LoginThrottledError) as second:
        accounts.authenticate(engine=engine, name=user, password="wrong-password", address=None)
    assert first.value.retry_after == 1 and second.value.retry_after == 2
    time.sleep(2.1)
    assert accounts.authenticate(engine=engine, name=user, password=PASSWORD, address=None).name == user
    fail()  # a success cleared the count: free again
    accounts.authenticate(engine=engine, name=user, password=PASSWORD, address=None)


def test_the_form_answers_429_with_retry_after(client, user):
    for _ in range(accounts.FREE_FAILURES["user"] + 1):
        assert sign_in(client, user, "wrong-password").status_code == 401
    res = sign_in(client, user)
    assert res.status_code == 429 and res.headers["retry-after"] == "1"
    assert "秒后再试" in res.text


def test_one_address_trying_many_accounts_is_slowed_too(engine):
    for i in range(accounts.FREE_FAILURES["addr"] + 1):
        with pytest.raises(accounts.InvalidCredentialsError):
            accounts.authenticate(engine=engine, name=f"guess-{i}", password="x" * 8, address="203.0.113.9")
    with pytest.raises(accounts.LoginThrottledError):
        accounts.authenticate(engine=engine, name="guess-new", password="x" * 8, address="203.0.113.9")


# -- passwords stay secret ----------------------------------------------------------------------

def test_the_password_is_never_logged_returned_or_stored(client, engine, caplog):
    secret = "Zq9-very-secret-password"
    caplog.set_level(logging.DEBUG)
    accounts.add_user(engine=engine, name="secretive", roles=["viewer"], password=secret)
    answers = [sign_in(client, "secretive", secret + "-wrong"), sign_in(client, "secretive", secret),
               client.get("/?f=html"), client.get("/uploads")]
    for res in answers:
        assert secret not in res.text and secret not in str(res.headers)
    assert secret not in caplog.text and "argon2" not in caplog.text
    with engine.connect() as conn:
        stored = conn.scalar(sa.text("SELECT password_hash FROM users WHERE name = 'secretive'"))
    assert stored.startswith("$argon2id$") and secret not in stored
    assert "password" not in accounts.list_users(engine=engine)[0]


# -- the command line -----------------------------------------------------------------------------

def test_the_users_commands(auth_url, engine, client, monkeypatch):
    monkeypatch.setenv("LANDECO_DATABASE_URL", auth_url.render_as_string(hide_password=False))
    run = CliRunner().invoke
    made = run(cli, ["users", "add", "cli-admin", "--role", "admin"])
    assert made.exit_code == 0, made.output
    generated = made.stdout.strip()
    assert len(generated) >= 16
    assert accounts.authenticate(engine=engine, name="cli-admin", password=generated, address=None)
    assert run(cli, ["users", "add", "cli-sam", "--role", "viewer,planner", "--password-stdin"],
               input="sam-password-1\n").exit_code == 0
    listed = run(cli, ["users", "list"]).stdout
    assert "cli-sam" in listed and "viewer,planner" in listed and "sam-password-1" not in listed
    assert run(cli, ["users", "grant", "cli-sam", "surveyor"]).stdout.strip() == \
        "cli-sam: viewer,surveyor,planner"
    assert run(cli, ["users", "revoke", "cli-sam", "planner"]).stdout.strip() == "cli-sam: viewer,surveyor"
    bad = run(cli, ["users", "grant", "cli-sam", "king"])
    assert bad.exit_code == 1 and "invalid_account" in bad.output
    issued = run(cli, ["users", "token", "cli-sam", "--label", "tablet", "--expires", "30"])
    token = issued.stdout.strip()
    assert issued.exit_code == 0 and re.fullmatch(r"lde_[A-Za-z0-9_-]{43}", token)  # alone on stdout
    assert client.get("/uploads", headers=_bearer(token)).status_code == 200
    listing = run(cli, ["users", "tokens", "cli-sam"]).stdout
    assert "tablet" in listing and token not in listing
    token_id = listing.splitlines()[1].split()[0]
    assert run(cli, ["users", "revoke-token", token_id]).exit_code == 0
    assert client.get("/uploads", headers=_bearer(token)).status_code == 401
    assert run(cli, ["users", "passwd", "cli-sam"], input="new-password-2\n").exit_code == 0
    assert accounts.authenticate(engine=engine, name="cli-sam", password="new-password-2", address=None)
    assert run(cli, ["users", "disable", "cli-sam"]).exit_code == 0
    assert "disabled" in run(cli, ["users", "list"]).stdout


def test_serve_says_how_to_make_the_first_administrator(new_database, monkeypatch, capsys):
    from api.cli import _first_admin_hint

    with new_database("landeco_test_noadmin") as url:
        settings = Settings(database_url=url.render_as_string(hide_password=False))
        _first_admin_hint(settings)
        assert "landeco users add admin --role admin" in capsys.readouterr().err
        accounts.add_user(engine=engine_for(url.render_as_string(hide_password=False)), name="root",
                          roles=["admin"], password="admin-password")
        _first_admin_hint(settings)
        assert capsys.readouterr().err == ""


def test_account_changes_and_sign_ins_land_in_the_audit_trail(auth_url, engine, client, monkeypatch, user):
    monkeypatch.setenv("LANDECO_DATABASE_URL", auth_url.render_as_string(hide_password=False))
    run = CliRunner().invoke
    assert run(cli, ["users", "add", "audited", "--role", "viewer", "--password-stdin"],
               input="audited-password-1\n").exit_code == 0
    assert run(cli, ["users", "grant", "audited", "planner"]).exit_code == 0
    token_id = run(cli, ["users", "token", "audited"]).exit_code == 0 and \
        run(cli, ["users", "tokens", "audited"]).stdout.splitlines()[1].split()[0]
    assert run(cli, ["users", "revoke-token", token_id]).exit_code == 0
    assert run(cli, ["users", "disable", "audited"]).exit_code == 0
    assert sign_in(client, user, "wrong-password").status_code == 401
    assert sign_in(client, user).status_code == 303
    token = _page_csrf(client)
    assert client.post("/logout", data={"csrf_token": token}, follow_redirects=False).status_code == 303
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT action, actor, detail FROM audit "
                                    "WHERE detail->>'user' = 'audited' OR detail->>'token_id' = :t "
                                    "OR actor = :u ORDER BY id"),
                            {"t": token_id, "u": user}).all()
    actions = [r.action for r in rows]
    assert actions[:5] == ["user.add", "user.grant", "token.create", "token.revoke", "user.disable"]
    assert actions[5:] == ["login.failed", "login.ok", "login.end"]
    assert rows[1].detail["roles"] == ["viewer", "planner"]
    assert all(r.actor == user for r in rows[5:])  # who tried, even when the password was wrong
    assert "audited-password-1" not in str(rows) and "wrong-password" not in str(rows)
