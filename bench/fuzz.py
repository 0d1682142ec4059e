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
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import httpx

from layers.database import create_database, database_url, drop_database, engine_for
from layers.demo import load_demo
from layers.migrate import upgrade
from layers.settings import Settings

CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_headers_conformance,response_schema_conformance,unsupported_method")
#: A documented 503 (database unavailable, query timeout) is an answer, not a server error.
CONFIG = """\
[checks.not_a_server_error]
expected-statuses = ["2xx", "3xx", "4xx", "503"]
"""
REPORT = Path(__file__).with_name("fuzz-report.json")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _fresh_database() -> str:
    url = database_url(Settings()).set(database="landeco_bench_fuzz")
    drop_database(url)
    create_database(url)
    upgrade(url)
    load_demo(url)
    engine_for(url.render_as_string(hide_password=False)).dispose()
    return url.render_as_string(hide_password=False)


def _serve(db: str, home: str) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {**os.environ, "LANDECO_DATABASE_URL": db, "LANDECO_HOME": home}
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1",
                             "--port", str(port), "--log-level", "warning"], env=env)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/conformance", timeout=2).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.terminate()
    raise RuntimeError("uvicorn did not start")


def _fuzz(base: str, args: argparse.Namespace) -> int:
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as config:
        config.write(CONFIG)
    command = [str(Path(sys.executable).with_name("schemathesis")), "--config-file", config.name, "run",
               f"{base}/api", "--checks", CHECKS, "--max-examples", str(args.examples),
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


def _walk(node: object):
    """Every dict in a JSON document."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def summary(report: dict) -> list[tuple[str, str, str, str]]:
    """(operation, failure, status, request) once per distinct failure in the JSON report."""
    rows: dict[tuple[str, str, str], str] = {}
    for node in _walk(report):
        if "title" in node and "operation" in node and ("code" in node or "message" in node):
            status = node.get("status_code") or node.get("response", {}).get("status_code", "")
            curl = node.get("curl") or node.get("reproduce") or ""
            rows.setdefault((node["operation"], node["title"], str(status)), curl)
    return [(op, title, status, curl) for (op, title, status), curl in sorted(rows.items())]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running landeco (default: start one over landeco_bench_fuzz)")
    parser.add_argument("--examples", type=int, default=100, help="examples per operation and phase")
    parser.add_argument("--seed", type=int, default=20220701)
    parser.add_argument("--phases", default="examples,coverage,fuzzing")
    parser.add_argument("--include-path-regex")
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
        code = _fuzz(base, args)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
    report = json.loads(REPORT.read_text("utf-8")) if REPORT.exists() else {}
    rows = summary(report)
    by_op: dict[str, int] = defaultdict(int)
    for op, *_ in rows:
        by_op[op] += 1
    print(f"\nschemathesis exit {code}; {len(rows)} distinct failures in {len(by_op)} operations; "
          f"{time.monotonic() - started:.0f} s; report {REPORT}")
    for op, title, status, curl in rows:
        print(f"- {op} | {title} | {status}\n    {curl[:400]}")


if __name__ == "__main__":
    main()
