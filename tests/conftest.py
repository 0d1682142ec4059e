"""Shared fixtures: a real PostGIS, and throwaway databases on it (never the demo data)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import URL

from api.app import create_app
from layers.database import create_database, database_url, drop_database, engine_for
from layers.demo import load_demo
from layers.migrate import upgrade
from layers.settings import Settings


@pytest.fixture(scope="session")
def settings() -> Settings:
    """Settings from the environment, as a user's shell would give them."""
    return Settings()


@pytest.fixture(scope="session")
def server_url(settings: Settings) -> URL:
    """The landeco database URL: LANDECO_DATABASE_URL, or the local cluster (started)."""
    return database_url(settings)


def _throwaway(server_url: URL, prefix: str) -> URL:
    url = server_url.set(database=f"{prefix}_{uuid.uuid4().hex[:10]}")
    create_database(url)
    return url


@pytest.fixture
def empty_db_url(server_url: URL) -> Iterator[URL]:
    """A new database with PostGIS and no schema, dropped afterwards."""
    url = _throwaway(server_url, "landeco_test_empty")
    yield url
    drop_database(url)


@pytest.fixture(scope="session")
def db_url(server_url: URL) -> Iterator[URL]:
    """A migrated throwaway database shared by the session, dropped at the end."""
    url = _throwaway(server_url, "landeco_test")
    upgrade(url)
    yield url
    engine_for(url.render_as_string(hide_password=False)).dispose()
    drop_database(url)


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
def demo_url(server_url: URL) -> Iterator[URL]:
    """A throwaway database holding the demo township (seed 20220701). Read it, never write."""
    url = _throwaway(server_url, "landeco_test_demo")
    upgrade(url)
    load_demo(url)
    yield url
    engine_for(url.render_as_string(hide_password=False)).dispose()
    drop_database(url)


def client_for(url: URL, home) -> TestClient:
    """A TestClient of the app configured for the database at ``url``."""
    settings = Settings(database_url=url.render_as_string(hide_password=False), home=home)
    return TestClient(create_app(settings))


@pytest.fixture(scope="session")
def demo_client(demo_url: URL, tmp_path_factory) -> Iterator[TestClient]:
    """The app over the demo township, for tests that only read."""
    with client_for(demo_url, tmp_path_factory.mktemp("home")) as client:
        yield client
