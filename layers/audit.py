"""The audit trail: one row per write, who made it, from where, and what it changed.

Rows are only ever appended (the database's triggers refuse UPDATE, DELETE and TRUNCATE on
``audit``). :func:`record` writes in the caller's transaction, so a change and its record
stand or fall together: an upload's commit records inside the transaction that writes the
features. Callers say who acts with a :class:`Who` (the web: the signed-in person, or
anonymous; the command line: the OS user).
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from ipaddress import ip_address
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from layers.errors import BadRequestError
from layers.store.citus import bump_version, is_distributed
from layers.store.schema import AUDIT_MAX_FEATURE_IDS

__all__ = ["ACTIONS", "MAX_FEATURE_IDS", "InvalidAuditFilterError", "Who", "actors", "cli_who", "count",
           "query", "record", "record_as"]

MAX_FEATURE_IDS = AUDIT_MAX_FEATURE_IDS

#: The actions landeco records, and what each means (pages show these labels).
ACTIONS: dict[str, tuple[str, str]] = {
    "upload.check": ("检查上传文件", "upload checked"),
    "upload.commit": ("导入上传文件", "upload committed"),
    "upload.replace": ("替换整个图层", "layer replaced by an upload"),
    "upload.prune": ("清理过期上传", "upload pruned"),
    "upload.undo": ("撤销导入", "upload undone"),
    "feature.edit": ("编辑要素", "feature edited"),
    "feature.restore": ("恢复要素版本", "feature restored to a version"),
    "user.add": ("添加用户", "user added"),
    "user.disable": ("停用用户", "user disabled"),
    "user.enable": ("启用用户", "user enabled"),
    "user.password": ("修改密码", "password changed"),
    "user.grant": ("授予角色", "role granted"),
    "user.revoke": ("收回角色", "role revoked"),
    "token.create": ("创建令牌", "token created"),
    "token.revoke": ("吊销令牌", "token revoked"),
    "login.ok": ("登录成功", "signed in"),
    "login.failed": ("登录失败", "sign-in failed"),
    "login.end": ("退出登录", "signed out"),
    "raster.add": ("添加栅格", "raster added"),
    "raster.delete": ("删除栅格", "raster deleted"),
}

#: Lengths kept of free text (names and routes come from requests).
_MAX_TEXT = 500

_COLUMNS = ("id, at, actor, host(address) AS address, action, route, layer, upload_id, counts, feature_ids, "
            "detail")


class InvalidAuditFilterError(BadRequestError):
    """A filter of the audit trail cannot be read (a date, a time)."""

    code = "invalid_audit_filter"
    title = "Invalid filter"


@dataclass(frozen=True)
class Who:
    """Who acts and through what: the web (a person or anonymous) or the command line."""

    actor: str | None = None
    address: str | None = None
    route: str | None = None


def cli_who(command: str) -> Who:
    """The command line's actor: the OS user (``cli`` when it has no name)."""
    try:
        user = getpass.getuser() or "cli"
    except (KeyError, OSError):
        user = "cli"
    return Who(actor=user, address=None, route=f"cli: landeco {command}")


def _text(value: str | None) -> str | None:
    return None if value is None else str(value)[:_MAX_TEXT]


def _address(value: str | None) -> str | None:
    """An IP address, or NULL when the peer is not one (a test client, a unix socket)."""
    if not value:
        return None
    try:
        return str(ip_address(value))
    except ValueError:
        return None


def _json(value: Mapping[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, default=str)


#: What writes a layer: on Citus its audit entry does what the layer's triggers do on one server
#: (:func:`_distributed_write`).
LAYER_WRITES = frozenset({"upload.commit", "upload.replace", "upload.undo", "feature.edit", "feature.restore",
                          "change_patch.detect", "change_patch.step"})


def _distributed_write(conn: Connection, layer: str, action: str) -> None:
    """On Citus, what the version and cell triggers do on one server (docs/scale.md).

    Their statements cannot run on the shards (the version trigger's write of a reference table
    is a nested distributed execution Citus refuses after the first shard; the cells' read their
    transition tables), so landeco's audited writes bump the version and recompute the layer's
    cells (an upload's commit has already). A write typed in psql on Citus does neither.
    """
    from layers.overviews import refresh_cells  # (it builds on the tiles, which build on this)
    from layers.registry import get_layer

    bump_version(conn, layer)
    if action not in ("upload.commit", "upload.replace"):
        refresh_cells(conn, get_layer(layer))


def record(conn: Connection, *, actor: str | None, address: str | None, action: str,
           route: str | None = None, layer: str | None = None, upload_id: str | None = None,
           counts: Mapping[str, int] | None = None, feature_ids: Iterable[int] | None = None,
           detail: Mapping[str, Any] | None = None) -> int:
    """Append one entry in ``conn``'s transaction and return its id.

    ``feature_ids`` keeps the first :data:`MAX_FEATURE_IDS` (``counts`` says how many there
    were); ``actor`` ``None`` is anonymous. The caller commits (or rolls back with its change).
    """
    if layer and action in LAYER_WRITES and is_distributed(conn, layer):
        _distributed_write(conn, layer, action)
    ids = None
    if feature_ids is not None:
        ids = []
        for i in feature_ids:
            if len(ids) >= MAX_FEATURE_IDS:
                break
            ids.append(int(i))
    return int(conn.execute(sa.text(
        "INSERT INTO audit (actor, address, action, route, layer, upload_id, counts, feature_ids, detail) "
        "VALUES (:actor, CAST(:address AS inet), :action, :route, :layer, :upload_id, "
        "CAST(:counts AS jsonb), :feature_ids, CAST(:detail AS jsonb)) RETURNING id"),
        {"actor": _text(actor), "address": _address(address), "action": action, "route": _text(route),
         "layer": _text(layer), "upload_id": _text(upload_id), "counts": _json(counts),
         "feature_ids": ids, "detail": _json(detail)}).scalar_one())


def record_as(conn: Connection, who: Who | None, action: str, **fields: Any) -> int:
    """:func:`record` for ``who`` (anonymous when ``None``)."""
    who = who or Who()
    return record(conn, actor=who.actor, address=who.address, action=action,
                  **{"route": who.route, **fields})


def _where(actor: str | None, layer: str | None, since: datetime | None, until: datetime | None,
           action: str | None) -> tuple[str, dict[str, Any]]:
    """The filters: ``actor`` ``""`` is anonymous; ``action`` without a dot is a family (``upload``)."""
    clauses, params = [], {}
    if actor is not None:
        if actor == "":
            clauses.append("actor IS NULL")
        else:
            clauses.append("actor = :actor")
            params["actor"] = actor
    if layer:
        clauses.append("layer = :layer")
        params["layer"] = layer
    if action:
        if "." in action:
            clauses.append("action = :action")
            params["action"] = action
        else:
            clauses.append("starts_with(action, :family)")
            params["family"] = f"{action}."
    if since is not None:
        clauses.append("at >= :since")
        params["since"] = since
    if until is not None:
        clauses.append("at < :until")
        params["until"] = until
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def query(conn: Connection, *, actor: str | None = None, layer: str | None = None,
          since: datetime | None = None, until: datetime | None = None, action: str | None = None,
          limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
    """Entries newest first, filtered; ``since`` inclusive and ``until`` exclusive."""
    where, params = _where(actor, layer, since, until, action)
    rows = conn.execute(sa.text(f"SELECT {_COLUMNS} FROM audit{where} ORDER BY at DESC, id DESC "
                                "LIMIT :limit OFFSET :offset"),
                        {**params, "limit": limit, "offset": offset}).mappings().all()
    return [dict(r) for r in rows]


def count(conn: Connection, *, actor: str | None = None, layer: str | None = None,
          since: datetime | None = None, until: datetime | None = None, action: str | None = None) -> int:
    """How many entries :func:`query` would page through."""
    where, params = _where(actor, layer, since, until, action)
    return int(conn.scalar(sa.text(f"SELECT count(*) FROM audit{where}"), params))


def actors(conn: Connection) -> list[str]:
    """Every named actor of the trail, for a filter's choices."""
    return list(conn.scalars(sa.text("SELECT DISTINCT actor FROM audit WHERE actor IS NOT NULL ORDER BY 1 "
                                     "LIMIT 1000")))
