"""Shared fixtures: a real PostGIS, and throwaway databases on it (never the demo data)."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import pytest
import sqlalchemy as sa
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy.engine import URL

from api.app import create_app
from layers import accounts
from layers.demo import load_demo
from layers.settings import Settings
from layers.store.database import create_database, database_url, drop_database, engine_for
from layers.store.migrate import upgrade


@pytest.fixture(scope="session")
def settings() -> Settings:
    """Settings from the environment, as a user's shell would give them."""
    return Settings()


@pytest.fixture(scope="session")
def server_url(settings: Settings) -> URL:
    """The landeco database URL: LANDECO_DATABASE_URL, or the local cluster (started)."""
    return database_url(settings)


@pytest.fixture(scope="session")
def new_database(server_url: URL) -> Callable[..., AbstractContextManager[URL]]:
    """``with new_database("landeco_test_x") as url:`` a throwaway database, dropped afterwards.

    Named with a uuid, so that several suites can share the server; PostGIS enabled, and
    migrated unless ``migrate=False``.
    """

    @contextmanager
    def make(prefix: str, *, migrate: bool = True) -> Iterator[URL]:
        url = server_url.set(database=f"{prefix}_{uuid.uuid4().hex[:10]}")
        create_database(url)
        try:
            if migrate:
                upgrade(url)
            yield url
        finally:
            engine_for(url.render_as_string(hide_password=False)).dispose()
            drop_database(url)

    return make


@pytest.fixture
def empty_db_url(new_database) -> Iterator[URL]:
    """A new database with PostGIS and no schema, dropped afterwards."""
    with new_database("landeco_test_empty", migrate=False) as url:
        yield url


@pytest.fixture(scope="session")
def db_url(new_database) -> Iterator[URL]:
    """A migrated throwaway database shared by the session, dropped at the end."""
    with new_database("landeco_test") as url:
        yield url


@pytest.fixture(scope="session")
def engine(db_url: URL) -> sa.Engine:
    """The engine to the session's test database."""
    return engine_for(db_url.render_as_string(hide_password=False))


@pytest.fixture
def conn(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection whose transaction is rolled back after the test."""
    with engine.connect() as connection:
        trans = connection.begin()
        yield connection
        trans.rollback()


@pytest.fixture(scope="session")
def demo_url(new_database, tmp_path_factory) -> Iterator[URL]:
    """A throwaway database holding the demo township (seed 20220701). Read it, never write.

    With the demo's rasters (NDVI and cover of 2019-2022, stored under a session folder).
    """
    from layers.demo_rasters import load_demo_rasters

    with new_database("landeco_test_demo") as url:
        load_demo(url)
        load_demo_rasters(engine_for(url.render_as_string(hide_password=False)),
                          Settings(home=tmp_path_factory.mktemp("demo-rasters")))
        yield url


#: Tests ask far faster than people: no per-client rate limit unless a test sets one.
UNLIMITED = {"rate_limit_per_minute": 0, "tile_rate_limit_per_minute": 0}

#: Where TestClients send their requests: a host landeco answers to by default (not ``testserver``).
TEST_BASE = "http://localhost"


#: The account test clients act for: uploads and commits need the ``surveyor`` role.
TEST_SURVEYOR = "test-surveyor"


def surveyor_headers(url: URL | str) -> dict[str, str]:
    """``Authorization: Bearer …`` of a surveyor of the database at ``url`` (made on first use)."""
    text = url.render_as_string(hide_password=False) if isinstance(url, URL) else url
    engine = engine_for(text)
    if not any(u["name"] == TEST_SURVEYOR for u in accounts.list_users(engine=engine)):
        accounts.add_user(engine=engine, name=TEST_SURVEYOR, roles=["surveyor"], password="test-surveyor-pw")
    _, token = accounts.create_token(engine=engine, name=TEST_SURVEYOR, label="tests")
    return {"Authorization": f"Bearer {token}"}


def until(get: Callable[[], object], done: Callable[[object], bool], timeout: float = 90) -> object:
    """Ask ``get()`` every 0.2 s until ``done`` says yes; its last answer (work done by a job)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        answer = get()
        if done(answer):
            return answer
        time.sleep(0.2)
    raise AssertionError(f"never done: {answer}")


def job_finished(client: TestClient, location: str, timeout: float = 90) -> dict:
    """The job at ``location`` once it has finished (succeeded, failed or cancelled)."""
    return until(lambda: client.get(location).json(),
                 lambda job: job["state"] in ("succeeded", "failed", "cancelled"), timeout)


def client_for(url: URL, home, *, surveyor: bool = True, **settings_: object) -> TestClient:
    """A TestClient of the app configured for the database at ``url``, acting for a surveyor.

    ``surveyor=False`` sends no credentials (an anonymous visitor).
    """
    settings = Settings(database_url=url.render_as_string(hide_password=False), home=home,
                        **{**UNLIMITED, **settings_})
    return TestClient(create_app(settings), base_url=TEST_BASE,
                      headers=surveyor_headers(url) if surveyor else None)


@pytest.fixture(scope="session")
def demo_client(demo_url: URL, tmp_path_factory) -> Iterator[TestClient]:
    """The app over the demo township, for tests that only read."""
    with client_for(demo_url, tmp_path_factory.mktemp("home")) as client:
        yield client


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def live_app(demo_url, tmp_path_factory):
    """The landeco app over the demo database (tests may tune ``app.state``, then reset it)."""
    settings = Settings(database_url=demo_url.render_as_string(hide_password=False),
                        home=tmp_path_factory.mktemp("home"), **UNLIMITED)
    return create_app(settings)


@contextmanager
def serving(app) -> Iterator[str]:
    """``with serving(app) as base_url:`` uvicorn runs ``app`` on a free loopback port meanwhile."""
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def live_url(live_app) -> Iterator[str]:
    """The base URL of a uvicorn server running ``live_app`` on a free loopback port."""
    with serving(live_app) as url:
        yield url
