"""The one hierarchy of domain errors: every code unique, every code documented."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import api
import gis
import layers
from layers.errors import LandecoError

ROOT = Path(__file__).resolve().parents[2]


def _import_everything() -> None:
    for package in (gis, layers, api):
        for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            if ".migrations" in info.name or info.name == "api.main":
                continue
            importlib.import_module(info.name)


def _classes() -> list[type[LandecoError]]:
    _import_everything()
    out, todo = [], [LandecoError]
    while todo:
        cls = todo.pop()
        out.append(cls)
        todo.extend(cls.__subclasses__())
    # classes whose code is set per instance (a refused upload carries its reading problem's code)
    return [c for c in out if "code" in vars(c)]


def _documented() -> set[str]:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    text = "\n".join(p.read_text("utf-8") for p in pages)
    return set(re.findall(r"`([a-z][a-z0-9_]+)`", text))


def test_every_error_class_has_its_own_code():
    seen: dict[str, str] = {}
    for cls in _classes():
        name = f"{cls.__module__}.{cls.__qualname__}"
        other = seen.setdefault(cls.code, name)
        assert other == name, f"{name} reuses {other}'s code {cls.code!r}"
    assert len(seen) > 30


def test_every_code_and_alias_is_documented():
    documented = _documented()
    codes = {c for cls in _classes() for c in (cls.code, *cls.aliases)}
    missing = sorted(codes - documented - {"landeco_error"})
    assert missing == [], f"codes missing from README.md and docs/*.md: {missing}"


def test_aliases_are_former_codes_not_current_ones_of_another_fault():
    codes = {cls.code: cls for cls in _classes()}
    for cls in _classes():
        for alias in cls.aliases:
            assert alias != cls.code
            # an alias may be a generic code (invalid_parameter) but never another specific fault's
            assert alias not in codes or alias in ("invalid_parameter",), (cls, alias)
