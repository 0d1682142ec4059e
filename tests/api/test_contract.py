"""The API keeps the contract its OpenAPI document states: schemathesis over every operation.

Generated requests (valid and invalid, seeded: the same every run) go to the app over a
throwaway copy of the demo township that may be written (uploads, commits). Each answer is
checked: no server error (a documented 503 is not one), and its status, media type, headers
and body are the ones the document lists for that operation.

A second test sends awkward values (a NUL byte, a number past 64 bits, a far date, NaN) in
each parameter, one at a time: the random generation rarely hits them. A third asks every
operation once with the database down: a 503 with ``Retry-After``, as documented.

``KNOWN_FAILURES``, ``KNOWN_SWEEP_FAILURES`` and ``KNOWN_DOWN_FAILURES`` hold what is found
today and is being fixed in the routes; those requests still run, their failures are collected
and reported as a warning, and anything else fails the test. Remove an entry once its route
is fixed: the test is then strict there. The longer run is ``bench/fuzz.py``.
"""

from __future__ import annotations

import contextlib
import warnings
from collections import Counter

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.specs.openapi.checks import unsupported_method

from api.app import create_app
from bench.fuzz import (
    ANSWER_CHECKS,
    NASTY_SHORT,
    SLOW,
    contract_config,
    failures_of,
    plain_cases,
    request_line,
    sweep_cases,
)
from layers.demo import load_demo
from layers.settings import Settings
from tests.conftest import client_for

#: Examples per operation in the fuzzing phase: about a minute on 2 cores, with the sweep.
MAX_EXAMPLES = 100
CHECKS = [*ANSWER_CHECKS, unsupported_method]

#: (operation, failure title) → what is wrong, for generated requests (found 2026-11-30).
KNOWN_FAILURES: dict[tuple[str, str], str] = {}
#: (operation, parameter) → what is wrong, for the sweep of awkward values (found 2026-11-30).
KNOWN_SWEEP_FAILURES: dict[tuple[str, str], str] = {}
#: operation → what is wrong when the database is down (found 2026-11-30).
KNOWN_DOWN_FAILURES: dict[str, str] = {}
#: Failures of known-failing operations met during the run: (operation, what, request).
FOUND: list[tuple[str, str, str]] = []


class DeferredApp:
    """An ASGI app passing requests to the one a fixture builds: the database exists only then.

    (schemathesis reads the document when the module is imported, to make one test per operation;
    its fixture-based loader does not work with pytest 9.)
    """

    def __init__(self, app) -> None:
        self.app = app
        #: headers added to every request (the surveyor's token: uploads and commits are tested too)
        self.headers: list[tuple[bytes, bytes]] = []

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":  # the real app's lifespan is run by its TestClient
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] == "http":  # schemathesis names the host "testserver": use one landeco answers to
            headers = [(k, b"localhost" if k == b"host" else v) for k, v in scope["headers"]]
            scope = {**scope, "headers": headers + self.headers}
        # as a server does: the 500 has been sent (Starlette's ServerErrorMiddleware), the error is
        # re-raised for the log; the client must see the 500, not an exception
        with contextlib.suppress(Exception):
            await self.app(scope, receive, send)


APP = DeferredApp(create_app(Settings()))  # serves only the document until the fixture runs
schema = schemathesis.openapi.from_asgi("/api", APP, config=contract_config(MAX_EXAMPLES))


@pytest.fixture(scope="module", autouse=True)
def contract_app(new_database, tmp_path_factory):
    """The app over a demo database of its own, which the uploads and commits may write."""
    with new_database("landeco_test_contract") as url:
        load_demo(url)
        with client_for(url, tmp_path_factory.mktemp("contract-home")) as client:  # runs the lifespan
            document_only, APP.app = APP.app, client.app
            APP.headers = [(b"authorization", client.headers["authorization"].encode())]
            yield client.app
            APP.app, APP.headers = document_only, []
    if FOUND:
        counts = Counter((op, what) for op, what, _ in FOUND)
        lines = [f"{n:4d}  {op}  {what}" for (op, what), n in sorted(counts.items())]
        warnings.warn("known contract failures (KNOWN_FAILURES, KNOWN_SWEEP_FAILURES):\n"
                      + "\n".join(lines), stacklevel=1)


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_keeps_its_contract(case):
    response = case.call()
    try:
        case.validate_response(response, checks=CHECKS)
    except (FailureGroup, Failure) as exc:
        failures = list(exc.exceptions) if isinstance(exc, FailureGroup) else [exc]
        if any((case.operation.label, f.title) not in KNOWN_FAILURES for f in failures):
            raise
        FOUND.extend((case.operation.label, f.title, request_line(case, response)) for f in failures)


def test_awkward_values_keep_the_contract():
    """A NUL byte, a number past 64 bits, a far date, NaN: in each parameter, one at a time."""
    new = []
    for name, case in sweep_cases(schema, NASTY_SHORT, skip=SLOW):
        response = case.call()
        for failure in failures_of(case, response):
            row = (case.operation.label, f"{name}: {failure.title} {response.status_code}",
                   request_line(case, response))
            (FOUND if (case.operation.label, name) in KNOWN_SWEEP_FAILURES else new).append(row)
    assert not new, "\n".join(" | ".join(row) for row in new)


@pytest.fixture
def database_down(tmp_path):
    """The contract test's app pointed at a port where no database listens, for one test."""
    down = Settings(database_url="postgresql+psycopg://landeco@127.0.0.1:9/landeco", home=tmp_path)
    with TestClient(create_app(down), raise_server_exceptions=False) as client:
        APP.app, up = client.app, APP.app
        yield
        APP.app = up


def test_database_down_is_a_503_with_retry_after(database_down):
    new = []
    for case in plain_cases(schema):
        response = case.call()
        problems = [f.title for f in failures_of(case, response)]
        if response.status_code >= 500 and response.status_code != 503:
            problems.append(f"{response.status_code} instead of 503")
        if response.status_code == 503 and "retry-after" not in response.headers:
            problems.append("503 without Retry-After")
        if problems:
            row = (case.operation.label, ", ".join(dict.fromkeys(problems)), request_line(case, response))
            (FOUND if case.operation.label in KNOWN_DOWN_FAILURES else new).append(row)
    assert not new, "\n".join(" | ".join(row) for row in new)


def test_405_names_the_allowed_methods(demo_client):
    answer = demo_client.delete("/collections")
    assert answer.status_code == 405
    assert answer.headers["allow"] == "GET"
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["code"] == "method_not_allowed"


def test_document_lists_every_error_as_a_problem(demo_client):
    document = demo_client.get("/api").json()
    assert "HTTPValidationError" not in document["components"]["schemas"]
    assert document["components"]["schemas"]["Problem"]["required"] == ["type", "title", "status", "code",
                                                                        "detail"]
    for path, item in document["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            label = f"{method.upper()} {path}"
            # FastAPI's own 422 is gone; landeco's is the checks refusing an upload's or an edit's content
            assert "422" not in responses or label in (
                "POST /uploads", "POST /collections/{collection_id}/items",
                "PUT /collections/{collection_id}/items/{feature_id}",
                "PATCH /collections/{collection_id}/items/{feature_id}", "POST /rasters"), label
            if operation.get("parameters") or operation.get("requestBody"):
                assert "400" in responses, label
            if "{" in path:
                assert "404" in responses, label
            for status, response in responses.items():
                if int(status) >= 400:
                    problem = response["content"]["application/problem+json"]["schema"]
                    assert problem == {"$ref": "#/components/schemas/Problem"}, label
                if status in ("429", "503"):
                    assert response["headers"]["Retry-After"]["required"], label


def test_document_names_the_real_media_types(demo_client):
    paths = demo_client.get("/api").json()["paths"]

    def media(path: str, method: str = "get", status: str = "200") -> set[str]:
        return set(paths[path][method]["responses"][status]["content"])

    assert media("/collections/{collection_id}/items") == {"application/geo+json", "text/html"}
    assert media("/collections/{collection_id}/tiles/{tms}/{z}/{x}/{y}") == {
        "application/vnd.mapbox-vector-tile"}
    assert media("/maps/{layer_id}") == {"text/html"}
    assert media("/maps/{layer_id}.{fmt}") == {"image/png", "application/pdf"}
    assert "application/zip" in media("/export/{layer_id}")
    assert "text/csv" in media("/stats/{layer_id}")
    assert media("/uploads", "post", "201") == {"application/json"}
    assert {"413", "415", "422", "429"} <= set(paths["/uploads"]["post"]["responses"])
    assert "409" in paths["/uploads/{upload_id}/commit"]["post"]["responses"]
