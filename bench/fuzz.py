"""The long contract run: schemathesis over every operation of /api, many examples, every failure listed.

Usage: python -m bench.fuzz [--url http://127.0.0.1:8000] [--examples 100] [--seed 20220701]
                            [--phases examples,coverage,fuzzing] [--include-path-regex REGEX]

Without ``--url`` it builds ``landeco_bench_fuzz`` (the demo township, made afresh each run:
the fuzzing uploads and commits into it) and serves it with uvicorn on a free port and a
home of its own. It runs ``schemathesis run`` with the checks of tests/api/test_contract.py
(no server error other than a documented 503; status, media type, headers and body as
documented; 405 with ``Allow`` for a method a path does not take), writes schemathesis's JSON
report to ``bench/fuzz-report.json``, and prints one line per distinct failure: operation,
failure, status and the request that reproduces it. It measures; it does not pass or fail.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.openapi import EXAMPLES
from bench.serve import _free_port, _start
from layers.demo import load_demo
from layers.settings import Settings
from layers.store.database import create_database, database_url, drop_database, engine_for
from layers.store.migrate import upgrade

CLI_CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_headers_conformance,response_schema_conformance,unsupported_method")
#: A documented 503 (database unavailable, query timeout) is an answer, not a server error.
CONFIG = """\
[checks.not_a_server_error]
expected-statuses = ["2xx", "3xx", "4xx", "503"]
"""
REPORT = Path(__file__).with_name("fuzz-report.json")


def contract_config(max_examples: int = 100, seed: int = 20220701) -> schemathesis.Config:
    """Seeded and without shrinking: a bounded run that finds the same things every time."""
    return schemathesis.Config.from_dict({
        "seed": seed,
        "generation": {"max-examples": max_examples, "deterministic": True, "no-shrink": True,
                       "mode": "all", "database": "none"},
        "phases": {"stateful": {"enabled": False}},
        "checks": {"not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", "503"]}},
    })


# --- the sweep: each awkward value in each parameter, one at a time ---------------------------

#: Checks of one answer (the sweep's and the contract test's; 405s are checked by schemathesis).
ANSWER_CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
                 response_headers_conformance, response_schema_conformance]
#: Values a careless client sends by mistake and a hostile one on purpose; the random
#: generation rarely hits them (a NUL byte, a number past 64 bits, a day past 9999 …).
NASTY: tuple[str, ...] = ("\x00", "a\x00b", "NaN", "Infinity", "-1", "99999999999999999999999", "1e400",
                          "9999-12-31", "0001-01-01", "2026-02-30", "'", "\\", "漢字é", "x" * 3000)
#: Fewer, for the test suite's time budget.
NASTY_SHORT: tuple[str, ...] = ("\x00", "99999999999999999999999", "9999-12-31", "NaN")
#: ``POST /query`` bodies around one valid question, one awkward member each (NaN and
#: infinity as strings, which JSON carries and pydantic reads as floats).
QUERY_BODIES: tuple[dict, ...] = tuple({"layers": ["caragana_plots"], **extra} for extra in (
    {"area": {"min": "NaN"}}, {"area": {"min": "Infinity", "unit": "mu"}},
    {"area": {"min": 5, "max": 1, "unit": "ha"}}, {"limit": 10**30}, {"limit": -1},
    {"where": {"code": "\x00"}}, {"where": {"village_code": 10**30}}, {"where": {"planted_year": "x"}},
    {"where": {"\x00": 1}}, {"sort": "\x00"}, {"sort": "-" * 50}, {"buffer_m": "NaN"},
    {"buffer_m": 1e308, "place": {"bbox": [107, 38, 107.1, 38.1]}},
    {"place": {"bbox": ["NaN", 0, 1, 1]}}, {"place": {"villages": ["\x00"]}},
    {"place": {"geometry": {"type": "Point", "coordinates": ["NaN", 0]}}},
    {"place": {"geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [0, 0]]]}}},
    {"place": {"geometry": {"type": "Point", "coordinates": [1e308, 1e308]}}, "buffer_m": 1},
    {"area": {"min": "1e400"}}, {"buffer_m": "-Infinity"},
))
#: Query parameters that make a valid request of their own, kept while another one is awkward.
BASE_QUERY: dict[str, dict[str, str]] = {
    "GET /query": {"layers": "caragana_plots"},
    "GET /query/export": {"layers": "caragana_plots", "format": "csv"},
}
#: Parameters an operation takes beyond the document's list (any queryable, for equality).
MORE_PARAMETERS: dict[str, tuple[str, ...]] = {
    "GET /collections/{collection_id}/items": ("code", "planted_year", "inspected_on", "survival_rate"),
}
#: Operations the short sweep leaves out: a printed map takes seconds per request.
SLOW = {"GET /maps/{layer_id}.{fmt}"}


def plain_cases(schema):
    """One valid request per operation (the demo's ids in the path), but for uploading a file."""
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.label == "POST /uploads":
            continue
        path = {p.name: EXAMPLES.get(p.name, "1") for p in operation.path_parameters}
        body = ({"body": {"layers": ["caragana_plots"]}, "media_type": "application/json"}
                if operation.label == "POST /query" else {})
        yield operation.Case(path_parameters=path, query=dict(BASE_QUERY.get(operation.label, {})), **body)


def sweep_cases(schema, values: tuple[str, ...] = NASTY, skip: set[str] = frozenset()):
    """(what is awkward, request): valid requests but for one parameter or body member."""
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.label in skip:
            continue
        path = {p.name: EXAMPLES.get(p.name, "1") for p in operation.path_parameters}
        body = ({"body": {"layers": ["caragana_plots"]}, "media_type": "application/json"}
                if operation.label == "POST /query" else {})
        if operation.label == "POST /uploads":
            continue  # a form with a file: schemathesis's own generation covers it
        query = BASE_QUERY.get(operation.label, {})
        names = [*path, *(p.name for p in operation.query), *MORE_PARAMETERS.get(operation.label, ())]
        for name in names:
            for value in values:
                if name in path:
                    case = operation.Case(path_parameters={**path, name: value}, query=dict(query), **body)
                else:
                    case = operation.Case(path_parameters=path, query={**query, name: value}, **body)
                yield name, case
        if operation.label == "POST /query":
            for question in QUERY_BODIES:
                member = next(k for k in question if k != "layers")
                yield f"body.{member}", operation.Case(path_parameters={}, query={}, body=question,
                                                       media_type="application/json")


def failures_of(case, response) -> list[Failure]:
    """What the answer gets wrong against the document (empty when nothing; a 500 is one failure)."""
    try:
        case.validate_response(response, checks=ANSWER_CHECKS)
    except FailureGroup as group:
        failures = list(group.exceptions)
    except Failure as failure:
        failures = [failure]
    else:
        return []
    server = [f for f in failures if f.title == "Server error"]
    return server or failures


def request_line(case, response) -> str:
    """The request as sent, short enough for a table."""
    body = f" {json.dumps(case.body, allow_nan=True)[:120]}" if isinstance(case.body, dict) else ""
    url = str(response.request.url)
    return f"{case.method.upper()} {url[url.index('/', 8):][:200]}{body}"


def sweep(schema, base_url: str | None = None, values: tuple[str, ...] = NASTY,
          skip: set[str] = frozenset()) -> tuple[int, list[tuple[str, str, str, int, str]]]:
    """Requests sent, and (operation, parameter, failure, status, request) of every failure."""
    sent, found = 0, []
    for name, case in sweep_cases(schema, values, skip):
        response = case.call(base_url=base_url) if base_url else case.call()
        sent += 1
        found.extend((case.operation.label, name, f.title, response.status_code, request_line(case, response))
                     for f in failures_of(case, response))
    return sent, found


def _fresh_database() -> str:
    url = database_url(Settings()).set(database="landeco_bench_fuzz")
    drop_database(url)
    create_database(url)
    upgrade(url)
    load_demo(url)
    engine_for(url.render_as_string(hide_password=False)).dispose()
    return url.render_as_string(hide_password=False)


def _serve(db: str, home: str) -> tuple[subprocess.Popen, str]:
    """uvicorn on a free port; its log (the 500s' tracebacks) goes to ``<home>/server.log``."""
    port = _free_port()
    env = {**os.environ, "LANDECO_DATABASE_URL": db, "LANDECO_HOME": home}
    proc = _start([sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1",
                   "--port", str(port), "--log-level", "warning"], env, port, "/conformance",
                  Path(home) / "server.log")
    return proc, f"http://127.0.0.1:{port}"


def _fuzz(base: str, args: argparse.Namespace) -> int:
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as config:
        config.write(CONFIG)
    command = [str(Path(sys.executable).with_name("schemathesis")), "--config-file", config.name, "run",
               f"{base}/api", "--checks", CLI_CHECKS, "--max-examples", str(args.examples),
               "--seed", str(args.seed), "--phases", args.phases, "--workers", "1",
               "--continue-on-failure", "--no-shrink", "--request-timeout", "120",
               "--suppress-health-check", "all", "--report", "json",
               "--report-json-path", str(REPORT), "--output-truncate", "true"]
    if args.include_path_regex:
        command += ["--include-path-regex", args.include_path_regex]
    try:
        return subprocess.run(command, stdout=subprocess.DEVNULL if args.quiet else None).returncode
    finally:
        os.unlink(config.name)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running landeco (default: start one over landeco_bench_fuzz)")
    parser.add_argument("--examples", type=int, default=100, help="examples per operation and phase")
    parser.add_argument("--seed", type=int, default=20220701)
    parser.add_argument("--phases", default="examples,coverage,fuzzing")
    parser.add_argument("--include-path-regex")
    parser.add_argument("--no-schemathesis", action="store_true", help="only the sweep")
    parser.add_argument("--quiet", action="store_true", help="only the summary, not schemathesis's output")
    args = parser.parse_args(argv)
    started = time.monotonic()
    proc = None
    try:
        if args.url:
            base = args.url.rstrip("/")
        else:
            home = tempfile.mkdtemp(prefix="landeco-fuzz-")
            proc, base = _serve(_fresh_database(), home)
            print(f"landeco at {base}, home {home} (server.log: tracebacks of the 500s)", flush=True)
        code = None if args.no_schemathesis else _fuzz(base, args)
        fuzzed = time.monotonic()
        schema = schemathesis.openapi.from_url(f"{base}/api", config=contract_config())
        sent, found = sweep(schema, base)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
    if code is not None:
        report = json.loads(REPORT.read_text("utf-8")) if REPORT.exists() else {}
        cases = report.get("test_cases", {})
        print(f"\nschemathesis: exit {code}, {cases.get('generated', 0)} requests, "
              f"{len(report.get('failures', []))} distinct failures, {fuzzed - started:.0f} s "
              f"(details above and in {REPORT})")
        for failure in report.get("failures", []):
            operations = ", ".join(failure.get("operations", []))
            print(f"- {failure['title']} ×{failure.get('count', 1)}: {operations}")
    rows: dict[tuple[str, str, str, int], list[str]] = defaultdict(list)
    for operation, name, title, status, request in found:
        rows[operation, name, title, status].append(request)
    print(f"\nsweep: {sent} requests, {len(found)} failing, {len(rows)} distinct "
          f"(operation, parameter, failure, status), {time.monotonic() - fuzzed:.0f} s")
    print("| operation | parameter | failure | status | requests (first two, and how many) |")
    print("|---|---|---|---|---|")
    for (operation, name, title, status), requests in sorted(rows.items()):
        shown = "<br>".join(f"`{r}`" for r in requests[:2])
        print(f"| {operation} | {name} | {title} | {status} | {shown} ({len(requests)}) |")


if __name__ == "__main__":
    main()
