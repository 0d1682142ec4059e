"""The audit trail over HTTP and the command line: every write appends its entry; GET /audit reads them."""

from __future__ import annotations

import contextlib
import csv
import getpass
import io
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import URL
from typer.testing import CliRunner

from api.app import create_app
from api.cli import app as cli
from layers import accounts, audit
from layers.registry import LAYERS
from layers.settings import Settings
from layers.store.database import engine_for
from tests.conftest import TEST_BASE, UNLIMITED
from tests.data.fixtures import make


class FakeSignIn:
    """``X-Test-User: NAME`` signs the request in as account NAME (an admin, made on first use)."""

    def __init__(self, app, engine: sa.Engine) -> None:
        self.app = app
        self.engine = engine
        self.tokens: dict[str, str] = {}

    def token(self, name: str) -> str:
        if name not in self.tokens:
            with contextlib.suppress(accounts.InvalidAccountError):  # made by an earlier test's client
                accounts.add_user(engine=self.engine, name=name, roles=["admin"],
                                  password="audit-test-password")
            self.tokens[name] = accounts.create_token(engine=self.engine, name=name)[1]
        return self.tokens[name]

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            name = dict(scope["headers"]).get(b"x-test-user")
            if name is not None:
                auth = (b"authorization", f"Bearer {self.token(name.decode())}".encode())
                kept = [h for h in scope["headers"] if h[0] != b"authorization"]
                scope = {**scope, "headers": [*kept, auth]}
        await self.app(scope, receive, send)


@pytest.fixture(scope="module")
def url(new_database) -> Iterator[URL]:
    with new_database("landeco_test_audit_api") as url:
        yield url


@pytest.fixture(scope="module")
def engine(url: URL) -> sa.Engine:
    return engine_for(url.render_as_string(hide_password=False))


@pytest.fixture
def client(url: URL, engine: sa.Engine, tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(database_url=url.render_as_string(hide_password=False), home=tmp_path / "home",
                        **UNLIMITED)
    app = create_app(settings)
    app.add_middleware(FakeSignIn, engine=engine)
    with TestClient(app, base_url=TEST_BASE, client=("192.0.2.10", 40000),
                    headers={"X-Test-User": "audit-admin"}) as c:  # uploads and /audit need an account
        yield c
    with engine.begin() as conn:
        conn.execute(sa.text("TRUNCATE uploads, " + ", ".join(LAYERS) + " CASCADE"))


@pytest.fixture
def person() -> str:
    """A name of this test's own, so that its entries are told from the module's others."""
    return f"alice-{uuid.uuid4().hex[:8]}"


def entries(engine: sa.Engine, **filters) -> list[dict]:
    with engine.connect() as conn:
        return list(reversed(audit.query(conn, **filters, limit=1000)))  # oldest first


def upload(client: TestClient, path: Path, who: str | None, name: str = "plots.zip", **data) -> dict:
    headers = {"X-Test-User": who} if who else {}
    with open(path, "rb") as fh:
        r = client.post("/uploads", files={"file": (name, fh)}, data={"layer": "caragana_plots", **data},
                        headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


def plot_ids(engine: sa.Engine) -> list[int]:
    with engine.connect() as conn:
        return list(conn.scalars(sa.text("SELECT id FROM caragana_plots ORDER BY id")))


def test_check_and_commit_are_recorded(client, engine, person, tmp_path):
    up = upload(client, make.caragana_zip(tmp_path, 4), person)
    [check] = entries(engine, actor=person)
    assert check["action"] == "upload.check" and check["layer"] == "caragana_plots"
    assert check["upload_id"] == up["id"] and check["address"] == "192.0.2.10"
    assert check["route"] == "POST /uploads" and check["counts"]["features"] == 4
    assert check["detail"]["file"] == "plots.zip" and check["feature_ids"] is None
    r = client.post(f"/uploads/{up['id']}/commit", headers={"X-Test-User": person})
    assert r.status_code == 200, r.text
    _, commit = entries(engine, actor=person)
    assert commit["action"] == "upload.commit" and commit["upload_id"] == up["id"]
    assert commit["counts"] == {"inserted": 4, "updated": 0, "deleted": 0}
    assert commit["feature_ids"] == plot_ids(engine) and len(commit["feature_ids"]) == 4
    assert commit["route"] == f"POST /uploads/{up['id']}/commit"


def test_replace_records_what_it_deleted(client, engine, person, tmp_path):
    first = upload(client, make.caragana_zip(tmp_path / "a", 5), person)
    client.post(f"/uploads/{first['id']}/commit", headers={"X-Test-User": person})
    second = upload(client, make.caragana_zip(tmp_path / "b", 3), person, mode="replace")
    assert client.post(f"/uploads/{second['id']}/commit", params={"confirm": "true"},
                       headers={"X-Test-User": person}).status_code == 200
    replace = entries(engine, actor=person)[-1]
    assert replace["action"] == "upload.replace" and replace["upload_id"] == second["id"]
    assert replace["counts"] == {"inserted": 3, "updated": 0, "deleted": 5}
    assert replace["feature_ids"] == plot_ids(engine)


def test_upsert_records_inserted_and_updated(client, engine, person, tmp_path):
    first = upload(client, make.caragana_zip(tmp_path / "a", 2), person)
    client.post(f"/uploads/{first['id']}/commit", headers={"X-Test-User": person})
    frame = make.caragana_frame(3)
    frame.loc[0, "成活率"] = 0.5  # one feature edited, one unchanged (not updated), one new
    second = upload(client, make.caragana_zip(tmp_path / "b", frame=frame), person, mode="upsert")
    client.post(f"/uploads/{second['id']}/commit", headers={"X-Test-User": person})
    upsert = entries(engine, actor=person)[-1]
    assert upsert["counts"] == {"inserted": 1, "updated": 1, "deleted": 0}
    assert upsert["feature_ids"] == plot_ids(engine)


def test_a_failed_commit_records_nothing(client, engine, person, tmp_path):
    frame = make.caragana_frame(3)
    frame.loc[1, "种植方式"] = "乱种"
    up = upload(client, make.caragana_zip(tmp_path, frame=frame), person)
    assert client.post(f"/uploads/{up['id']}/commit", headers={"X-Test-User": person}).status_code == 409
    assert [e["action"] for e in entries(engine, actor=person)] == ["upload.check"]


def test_the_page_form_is_recorded(client, engine, tmp_path, person):
    """(A visitor may not upload at all: tests/api/test_permissions.py.)"""
    name = f"form-{uuid.uuid4().hex[:8]}.zip"
    with open(make.caragana_zip(tmp_path, 2), "rb") as fh:
        r = client.post("/uploads/form", files={"file": (name, fh)}, data={"layer": "caragana_plots"},
                        headers={"X-Test-User": person}, follow_redirects=False)
    assert r.status_code == 303, r.text
    upload_id = r.headers["location"].split("id=")[1]
    assert client.post(f"/uploads/{upload_id}/commit/form", headers={"X-Test-User": person},
                       follow_redirects=False).status_code == 303
    mine = [e for e in entries(engine, actor=person) if e["upload_id"] == upload_id]
    assert [(e["action"], e["actor"], e["route"]) for e in mine] == [
        ("upload.check", person, "POST /uploads/form"),
        ("upload.commit", person, f"POST /uploads/{upload_id}/commit/form")]
    assert mine[0]["detail"]["file"] == name and mine[1]["counts"]["inserted"] == 2


def test_prune_on_the_command_line_is_recorded(client, engine, url, tmp_path, monkeypatch):
    up = upload(client, make.caragana_zip(tmp_path, 2), None, name="old.zip")
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE uploads SET created_at = now() - interval '40 days' WHERE id = :id"),
                     {"id": up["id"]})
    monkeypatch.setenv("LANDECO_DATABASE_URL", url.render_as_string(hide_password=False))
    monkeypatch.setenv("LANDECO_HOME", str(client.app.state.settings.home))
    result = CliRunner().invoke(cli, ["uploads", "prune"])
    assert result.exit_code == 0 and f"removed {up['id']}" in result.output, result.output
    [pruned] = [e for e in entries(engine, action="upload.prune") if e["upload_id"] == up["id"]]
    assert pruned["actor"] == getpass.getuser() and pruned["route"] == "cli: landeco uploads prune"
    assert pruned["layer"] == "caragana_plots" and pruned["detail"]["file"] == "old.zip"
    assert pruned["detail"]["state"] == "checked" and pruned["counts"]["bytes"] > 0


def test_import_on_the_command_line_is_recorded(client, engine, url, tmp_path, monkeypatch):
    monkeypatch.setenv("LANDECO_DATABASE_URL", url.render_as_string(hide_password=False))
    zipped = make.caragana_zip(tmp_path, 3)
    result = CliRunner().invoke(cli, ["import", str(zipped), "--layer", "caragana_plots"])
    assert result.exit_code == 0, result.output
    [entry] = [e for e in entries(engine, action="upload.commit") if e["route"] == "cli: landeco import"]
    assert entry["actor"] == getpass.getuser() and entry["counts"]["inserted"] == 3
    assert entry["feature_ids"] == plot_ids(engine) and entry["detail"]["file"] == "caragana.zip"


# -- GET /audit ----------------------------------------------------------------------------------

def _two_people(client, tmp_path) -> tuple[str, str, str]:
    tag = uuid.uuid4().hex[:8]
    a, b = f"a-{tag}", f"b-{tag}"
    up = upload(client, make.caragana_zip(tmp_path / "a", 2), a)
    client.post(f"/uploads/{up['id']}/commit", headers={"X-Test-User": a})
    upload(client, make.caragana_zip(tmp_path / "b", 2), b)
    return a, b, up["id"]


def test_audit_json_filters_and_pages(client, tmp_path):
    a, b, _ = _two_people(client, tmp_path)
    body = client.get("/audit", params={"actor": a, "f": "json"}).json()
    assert body["total"] == 2 and [e["action"] for e in body["entries"]] == ["upload.commit", "upload.check"]
    assert body["entries"][0]["at"].endswith("+08:00")  # the township's time
    def total(**params) -> int:
        return client.get("/audit", params=params, headers={"Accept": "application/json"}).json()["total"]

    assert total(actor=b) == 1
    assert total(actor=a, action="upload.check") == 1 and total(actor=a, action="upload") == 2
    assert total(actor=a, layer="villages") == 0 and total(actor=a, layer="caragana_plots") == 2
    page = client.get("/audit", params={"actor": a, "limit": 1, "offset": 1, "f": "json"}).json()
    assert [e["action"] for e in page["entries"]] == ["upload.check"] and "prev" in page["links"]
    first = client.get("/audit", params={"actor": a, "limit": 1, "f": "json"}).json()
    assert "next" in first["links"] and "offset=1" in first["links"]["next"]
    assert client.get("/audit", params={"actor": a, "since": "2000-01-01", "until": "2000-12-31",
                                        "f": "json"}).json()["total"] == 0
    assert client.get("/audit", params={"actor": a, "since": "2000-01-01", "f": "json"}).json()["total"] == 2
    bad = client.get("/audit", params={"since": "yesterday"})
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_audit_filter"


def _hostile_entry(client, tmp_path, who: str, name: str) -> dict:
    """An upload (by a person) and an entry naming ``who``: account names cannot hold such text,
    so the entry is written as another program (an importer run by that system user) would."""
    up = upload(client, make.caragana_zip(tmp_path, 2), f"p-{uuid.uuid4().hex[:8]}", name=name)
    with client.app.state.engine.begin() as conn:
        audit.record(conn, actor=who, address=None, action="upload.check", route="POST /uploads",
                     layer="caragana_plots", upload_id=up["id"], detail={"file": name})
    return up


def test_audit_csv_is_for_excel_and_inert(client, tmp_path):
    who = f"=HYPERLINK(\"http://evil\")-{uuid.uuid4().hex[:6]}"
    up = _hostile_entry(client, tmp_path, who, "@SUM(1+1).zip")
    r = client.get("/audit", params={"actor": who, "f": "csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    assert r.content.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows[0][:5] == ["编号", "时间", "操作人", "地址", "操作"]
    [row] = rows[1:]
    assert row[2] == "'" + who and row[4] == "检查上传文件" and row[5] == "upload.check"
    assert row[8] == up["id"] and "'@SUM" not in row[12] and "@SUM(1+1).zip" in row[12]
    en = list(csv.reader(io.StringIO(client.get("/audit", params={"actor": who, "f": "csv", "lang": "en"})
                                     .content.decode("utf-8-sig"))))
    assert en[0][:3] == ["id", "at", "actor"] and en[1][4] == "upload checked"


def test_the_page_shows_hostile_values_as_text(client, tmp_path):
    who = f"<script>alert('who')</script>{uuid.uuid4().hex[:6]}"
    _hostile_entry(client, tmp_path, who, "<img src=x onerror=alert(1)>.zip")
    r = client.get("/audit", params={"actor": who}, headers={"Accept": "text/html"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    assert "<script" not in page and "<img" not in page
    assert "&lt;script&gt;alert(&#39;who&#39;)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;.zip" in page
    assert "操作记录" in page and "检查上传文件" in page and "共 1 条" in page
    en = client.get("/audit", params={"actor": who, "lang": "en", "f": "html"}).text
    assert "Audit trail" in en and "upload checked" in en and "1 entries" in en


def test_the_page_filters_keep_their_values(client, tmp_path):
    a, _b, _ = _two_people(client, tmp_path)
    page = client.get("/audit", params={"actor": a, "action": "upload.commit", "f": "html"}).text
    assert f'<option value="{a}" selected>' in page
    assert '<option value="upload.commit" selected>' in page
    assert page.count('class="entry"') == 1
