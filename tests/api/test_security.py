"""Security headers, the CSP nonce, trusted hosts, public_url and refused cross-site writes."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import URL

from api.app import create_app
from api.pages import json_for_script
from layers.registry import LAYERS
from layers.settings import Settings
from layers.store.database import engine_for
from tests.conftest import client_for, surveyor_headers
from tests.data.fixtures import make

EVIL = "https://evil.example"


def _nonce(response) -> str:
    csp = response.headers["content-security-policy"]
    found = re.search(r"script-src 'self' 'nonce-([A-Za-z0-9_-]+)'", csp)
    assert found, csp
    return found.group(1)


def _inline_scripts(text: str) -> list[str]:
    """The opening tags of scripts that run (not JSON data blocks)."""
    return [t for t in re.findall(r"<script\b[^>]*>", text, re.IGNORECASE)
            if "application/json" not in t]


@pytest.mark.parametrize("path", ["/", "/collections?f=json", "/collections/villages/items?f=json",
                                  "/collections/caragana_plots/tiles/WebMercatorQuad/0/0/0",
                                  "/no/such/page", "/static/landeco.css"])
def test_every_response_carries_the_security_headers(demo_client, path):
    r = demo_client.get(path)
    assert r.status_code in (200, 204, 404), r.text
    h = r.headers
    assert h["x-content-type-options"] == "nosniff"
    assert h["x-frame-options"] == "SAMEORIGIN"
    assert h["referrer-policy"] == "strict-origin-when-cross-origin"
    csp = h["content-security-policy"]
    for directive in ("default-src 'self'", "connect-src 'self'", "frame-ancestors 'self'",
                      "object-src 'none'", "base-uri 'self'", "form-action 'self'",
                      "img-src 'self' data: https://tile.openstreetmap.org"):
        assert directive in csp, (directive, csp)
    assert "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
    assert "unsafe-eval" not in csp and "tianditu" not in csp
    assert "access-control-allow-origin" not in h


def test_tianditu_hosts_are_allowed_images_only_with_a_key(demo_client, monkeypatch):
    monkeypatch.setattr(demo_client.app.state.settings, "tianditu_key", "k")
    csp = demo_client.get("/").headers["content-security-policy"]
    img = csp.split("img-src")[1].split(";")[0]
    assert all(f"https://t{i}.tianditu.gov.cn" in img for i in range(8))


@pytest.mark.parametrize("path", ["/query?layers=caragana_plots&villages=150623101201", "/maps/villages",
                                  "/collections/caragana_plots/items?f=html&limit=5", "/uploads", "/api.html",
                                  "/maps/villages/150623101201"])
def test_each_page_has_a_fresh_nonce_on_every_script_it_runs(demo_client, path):
    first, second = demo_client.get(path), demo_client.get(path)
    assert first.status_code == 200, first.text
    nonce = _nonce(first)
    assert nonce != _nonce(second) and len(nonce) >= 16
    scripts = _inline_scripts(first.text)
    assert scripts
    assert all(f'nonce="{nonce}"' in tag for tag in scripts if "src=" not in tag), scripts
    assert not re.search(r"\son[a-z]+\s*=", first.text), "an inline event handler (the CSP blocks it)"


def test_a_304_keeps_the_policy_of_the_cached_page(demo_client):
    fid = demo_client.get("/collections/villages/items?limit=1").json()["features"][0]["id"]
    page = demo_client.get(f"/collections/villages/items/{fid}?f=html")
    again = demo_client.get(f"/collections/villages/items/{fid}?f=html",
                            headers={"If-None-Match": page.headers["etag"]})
    assert again.status_code == 304
    # a new policy would name a new nonce, and the cached page's scripts would not run
    assert "content-security-policy" not in again.headers
    assert again.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("value", ["</script><script>alert(1)</script>", "<!--<script>", "a&b'c\u2028d\u2029",
                                   '"><img src=x onerror=alert(1)>'])
def test_json_for_a_script_cannot_end_it_and_reads_back_the_same(value):
    for out in (json_for_script({"name": value}), json_for_script(json.dumps({"name": value}), text=True)):
        assert not set(out) & set("<>&'\u2028\u2029")
        assert json.loads(out) == {"name": value}


def test_a_foreign_host_gets_400_and_never_a_page(demo_client):
    for host in ("evil.example", "evil.example:8000", "localhost.evil.example", "[::2]:80"):
        r = demo_client.get("/", headers={"Host": host})
        assert r.status_code == 400, host
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["code"] == "untrusted_host" and "evil" not in r.text
        assert r.headers["x-frame-options"] == "SAMEORIGIN"
    for host in ("localhost:8000", "127.0.0.1", "[::1]:8000", "LOCALHOST"):
        assert demo_client.get("/", headers={"Host": host}).status_code == 200, host


def test_allowed_hosts_from_the_environment(monkeypatch):
    monkeypatch.setenv("LANDECO_ALLOWED_HOSTS", "landeco.lan, 10.0.0.5")
    settings = Settings()
    assert settings.allowed_hosts == ["landeco.lan", "10.0.0.5"]
    with TestClient(create_app(settings), base_url="http://landeco.lan:8080") as c:
        page = c.get("/conformance?f=html")
        assert page.status_code == 200 and 'href="http://landeco.lan:8080/maps' in page.text
        assert c.get("/conformance", headers={"Host": "10.0.0.5"}).status_code == 200
        assert c.get("/conformance", headers={"Host": "localhost"}).json()["code"] == "untrusted_host"


def test_public_url_builds_every_link_and_redirect(demo_url, tmp_path):
    settings = Settings(database_url=demo_url.render_as_string(hide_password=False), home=tmp_path,
                        public_url="https://landeco.example.gov.cn/gis/")
    with TestClient(create_app(settings), base_url="http://localhost",
                    headers=surveyor_headers(demo_url)) as c:
        doc = c.get("/collections?f=json").json()
        hrefs = [ln["href"] for ln in doc["links"]] + [ln["href"] for col in doc["collections"]
                                                     for ln in col["links"]]
        assert hrefs and all(h.startswith("https://landeco.example.gov.cn/gis/") for h in hrefs), hrefs
        page = c.get("/collections?f=html").text
        assert 'href="https://landeco.example.gov.cn/gis/maps"' in page and "http://localhost" not in page
        # the public host is trusted, and its origin may write
        assert c.get("/conformance", headers={"Host": "landeco.example.gov.cn"}).status_code == 200
        r = c.post("/uploads", headers={"Origin": "https://landeco.example.gov.cn"})
        assert r.status_code == 400 and r.json()["code"] == "invalid_parameter"  # no file, but not refused
        redirect = _upload(c, make.caragana_zip(tmp_path, 1), form=True)  # checked, not written
        assert redirect.status_code == 303
        assert redirect.headers["location"].startswith("https://landeco.example.gov.cn/gis/uploads?id=")


def test_a_bad_public_url_is_refused():
    with pytest.raises(ValueError, match="public_url"):
        Settings(public_url="landeco.example.gov.cn")


# -- writes from other sites -------------------------------------------------------------------

@pytest.fixture(scope="module")
def write_url(new_database) -> Iterator[URL]:
    with new_database("landeco_test_security") as url:
        yield url


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def client(write_url: URL, home: Path) -> Iterator[TestClient]:
    with client_for(write_url, home) as c:
        yield c
    with engine_for(write_url.render_as_string(hide_password=False)).begin() as conn:
        conn.execute(sa.text("TRUNCATE " + ", ".join(LAYERS) + " CASCADE"))


def _count(url: URL) -> int:
    with engine_for(url.render_as_string(hide_password=False)).connect() as conn:
        return conn.scalar(sa.text("SELECT count(*) FROM caragana_plots"))


def _upload(client: TestClient, path: Path, headers: dict[str, str] | None = None, form: bool = False):
    with open(path, "rb") as fh:
        return client.post("/uploads/form" if form else "/uploads", files={"file": (path.name, fh)},
                           data={"layer": "caragana_plots"}, headers=headers or {}, follow_redirects=False)


def _stored(home: Path) -> list[Path]:
    return list((home / "uploads").glob("*")) if (home / "uploads").exists() else []


@pytest.mark.parametrize("headers", [{"Origin": EVIL}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"},
                                     {"Sec-Fetch-Site": "same-site", "Origin": "http://localhost"},
                                     {"Origin": "http://localhost.evil.example"},
                                     {"Origin": "http://localhost:9999"}])
@pytest.mark.parametrize("form", [False, True])
def test_an_upload_from_another_site_is_refused_and_nothing_is_stored(client, home, tmp_path, headers, form):
    r = _upload(client, make.caragana_zip(tmp_path, 2), headers, form=form)
    assert r.status_code == 403, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "cross_origin_write"
    assert "access-control-allow-origin" not in r.headers
    assert _stored(home) == []


def test_a_commit_from_another_site_is_refused_and_the_layer_untouched(client, write_url, home, tmp_path):
    checked = _upload(client, make.caragana_zip(tmp_path, 3), {"Origin": "http://localhost",
                                                             "Sec-Fetch-Site": "same-origin"})
    assert checked.status_code == 201, checked.text
    upload_id = checked.json()["id"]
    for path in (f"/uploads/{upload_id}/commit", f"/uploads/{upload_id}/commit/form"):
        for headers in ({"Origin": EVIL}, {"Sec-Fetch-Site": "cross-site"}):
            r = client.post(path, headers=headers, follow_redirects=False)
            assert r.status_code == 403 and r.json()["code"] == "cross_origin_write"
    assert _count(write_url) == 0
    assert client.get(f"/uploads/{upload_id}").json()["state"] == "checked"
    # landeco's own page (same origin), and a script sending no browser headers, may commit
    done = client.post(f"/uploads/{upload_id}/commit/form", headers={"Origin": "http://localhost",
                                                                    "Sec-Fetch-Site": "same-origin"},
                       follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"].startswith("http://localhost/uploads?id=")
    assert _count(write_url) == 3


def test_a_client_without_browser_headers_may_write(client, write_url, tmp_path):
    checked = _upload(client, make.caragana_zip(tmp_path, 2))
    assert checked.status_code == 201
    assert client.post(f"/uploads/{checked.json()['id']}/commit").status_code == 200
    assert _count(write_url) == 2


def test_reads_from_another_site_are_not_refused(demo_client):
    r = demo_client.get("/collections?f=json", headers={"Origin": EVIL, "Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 200
