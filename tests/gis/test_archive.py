"""Safe unpacking: nested folders and Chinese names arrive; escapes, links and bombs are refused."""

from __future__ import annotations

import stat
import zipfile

import pytest

from gis.archive import Limits, extract_zip, sniff
from gis.errors import InputError
from tests.data.fixtures import make


def test_nested_folders_and_gbk_member_names(tmp_path):
    # a Windows tool writes GBK names without the UTF-8 flag: patch an ASCII name of the same length
    gbk = "成果/地块.shp".encode("gbk")
    placeholder = b"ABCD/EFGH.shp"
    assert len(gbk) == len(placeholder)
    with zipfile.ZipFile(tmp_path / "tmp.zip", "w") as zf:
        zf.writestr(placeholder.decode(), b"x")
    (tmp_path / "gbk.zip").write_bytes((tmp_path / "tmp.zip").read_bytes().replace(placeholder, gbk))
    files = extract_zip(tmp_path / "gbk.zip", tmp_path / "out")
    assert [p.relative_to(tmp_path / "out").as_posix() for p in files] == ["成果/地块.shp"]


@pytest.mark.parametrize("name", ["../evil.shp", "/etc/evil.shp", "a/../../evil.shp", "C:/evil.shp",
                                  "..\\evil.shp"])
def test_escaping_paths_are_refused(tmp_path, name):
    target = tmp_path / "e.zip"
    with zipfile.ZipFile(target, "w") as zf:
        zf.writestr(name, b"x")
    with pytest.raises(InputError) as exc:
        extract_zip(target, tmp_path / "out")
    assert exc.value.code == "unsafe_path"
    assert not (tmp_path / "evil.shp").exists() and not (tmp_path / "out").exists()


def test_symbolic_links_are_refused(tmp_path):
    target = tmp_path / "l.zip"
    with zipfile.ZipFile(target, "w") as zf:
        info = zipfile.ZipInfo("link.shp")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(InputError) as exc:
        extract_zip(target, tmp_path / "out")
    assert exc.value.code == "unsafe_path"


def test_bombs_and_size_limits(tmp_path):
    bomb = make.bomb_zip(tmp_path / "b.zip", size=64 * 1024**2)
    with pytest.raises(InputError) as exc:
        extract_zip(bomb, tmp_path / "out")
    assert exc.value.code == "zip_bomb"
    with pytest.raises(InputError) as exc:
        extract_zip(bomb, tmp_path / "out", Limits(max_bytes=10 * 1024**2, max_ratio=1e9))
    assert exc.value.code == "too_large"
    many = tmp_path / "m.zip"
    with zipfile.ZipFile(many, "w") as zf:
        for i in range(20):
            zf.writestr(f"{i}.txt", b"x")
    with pytest.raises(InputError) as exc:
        extract_zip(many, tmp_path / "out", Limits(max_members=10))
    assert exc.value.code == "zip_bomb"


def test_corrupt_zip(tmp_path):
    with pytest.raises(InputError) as exc:
        extract_zip(make.corrupt_bytes(tmp_path / "c.zip"), tmp_path / "out")
    assert exc.value.code == "corrupt_zip"


def test_sniff(tmp_path):
    (tmp_path / "a").write_bytes(b"PK\x03\x04rest")
    (tmp_path / "b").write_bytes(b"SQLite format 3\x00")
    (tmp_path / "c").write_bytes(b'\xef\xbb\xbf [{"type": "Feature"}]')
    (tmp_path / "d").write_bytes(b'<?xml version="1.0"?><kml>')
    (tmp_path / "e").write_bytes(b"\x00\x00\x27\x0a")
    assert [sniff(tmp_path / n) for n in "abcde"] == ["zip", "gpkg", "json", "kml", "unknown"]
