"""Who may do what: accounts, roles, passwords, page sessions, API tokens, the sign-in delay.

Passwords are argon2id hashes (pwdlib); API tokens and session cookies are random secrets of
which only the sha256 is stored, so a copy of the database opens nothing. A disabled
account stops at once: every look-up of a session or a token checks the account, and
disabling removes its sessions. Nothing here logs or returns a password or a hash.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import threading
import time
import weakref
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import sqlalchemy as sa
from pwdlib import PasswordHash

from layers import audit
from layers.audit import Who
from layers.errors import BadRequestError, LandecoError, NotFoundError
from layers.store.schema import ROLES

__all__ = [
    "ROLES", "AuthenticationRequiredError", "ForbiddenError", "InvalidCredentialsError",
    "LoginThrottledError", "Principal", "UnknownAccountError", "UnknownTokenError", "add_user",
    "any_admin", "authenticate", "create_token", "end_session", "generate_password", "grant",
    "list_tokens", "list_users", "principal_for_session", "principal_for_token", "revoke",
    "revoke_token", "set_disabled", "set_password", "start_session", "token_hash",
]

@cache
def _hasher() -> PasswordHash:
    """argon2id with pwdlib's parameters (made on first use: the command line starts without it)."""
    return PasswordHash.recommended()


@cache
def _dummy_hash() -> str:
    """A hash to check unknown names against, so that they take as long as known ones."""
    return _hasher().hash("landeco-dummy-password")
#: Verified when the account does not exist, so that the answer takes as long as a real check.
#: Failed sign-ins allowed without a delay: per account, and per address (an office shares one).
FREE_FAILURES = {"user": 3, "addr": 10}
#: A run of failures is forgotten this long after its last one.
FORGET_AFTER = timedelta(hours=1)
#: ``last_used_at`` of a token and ``last_seen_at`` of a session are written at most this often.
TOUCH_EVERY = timedelta(minutes=1)
#: Prefix of API tokens: recognisable in a leaked file (secret scanners), never part of the hash.
TOKEN_PREFIX = "lde_"


class AuthenticationRequiredError(LandecoError):
    """The route needs an account and the request carries none (or a dead one)."""

    code = "authentication_required"
    status = 401
    title = "Authentication required"


class ForbiddenError(LandecoError):
    """The account lacks the role the route needs."""

    code = "forbidden"
    status = 403
    title = "Forbidden"


class InvalidCredentialsError(LandecoError):
    """Wrong user name or password (never saying which)."""

    code = "invalid_credentials"
    status = 401
    title = "Invalid credentials"


class LoginThrottledError(LandecoError):
    """Too many failed sign-ins of this account or from this address: wait ``retry_after`` s."""

    code = "login_throttled"
    status = 429
    title = "Too many failed sign-ins"

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed sign-ins: try again in {retry_after} s")
        self.retry_after = retry_after

    def extra(self) -> dict[str, object]:
        """Seconds to wait."""
        return {"retry_after": self.retry_after}


class UnknownAccountError(NotFoundError):
    """No account of that name."""

    code = "unknown_account"
    title = "Unknown account"


class UnknownTokenError(NotFoundError):
    """No API token of that id."""

    code = "unknown_token"
    title = "Unknown token"


class InvalidAccountError(BadRequestError):
    """A name, role or password that cannot be stored."""

    code = "invalid_account"
    title = "Invalid account"


@dataclass(frozen=True)
class Principal:
    """Who a request acts for: the account's name and roles, and how it proved it."""

    name: str
    roles: frozenset[str]
    display_name: str | None = None
    #: ``session`` (a browser's cookie) or ``token`` (a bearer token)
    via: str = "token"
    #: the session's CSRF secret (forms carry it), for ``via == "session"``
    csrf: str | None = field(default=None, repr=False)

    def has(self, role: str) -> bool:
        """Whether the account holds ``role``: ``admin`` implies every role, any role ``viewer``.

        >>> Principal("a", frozenset({"admin"})).has("surveyor")
        True
        >>> p = Principal("s", frozenset({"surveyor"}))
        >>> p.has("viewer"), p.has("planner")
        (True, False)
        """
        if "admin" in self.roles or role in self.roles:
            return True
        return role == "viewer" and bool(self.roles)


def token_hash(secret: str) -> str:
    """The sha256 (hex) stored for a token or a session cookie."""
    return hashlib.sha256(secret.encode()).hexdigest()


def generate_password() -> str:
    """A random password to hand to a person once (about 100 bits)."""
    return secrets.token_urlsafe(16)


def _now() -> datetime:
    return datetime.now(UTC)


def _roles(roles: list[str] | tuple[str, ...] | set[str]) -> list[str]:
    out = {r.strip() for r in roles if r.strip()}
    unknown = sorted(out - set(ROLES))
    if unknown:
        raise InvalidAccountError(f"unknown role(s) {', '.join(unknown)}: roles are {', '.join(ROLES)}")
    return [r for r in ROLES if r in out]


def _check_password(password: str) -> None:
    if len(password) < 8:
        raise InvalidAccountError("a password needs at least 8 characters")


def _need(result: sa.CursorResult, name: str) -> None:
    if result.rowcount == 0:
        raise UnknownAccountError(f"no account called {name!r}")


# -- accounts ----------------------------------------------------------------------------------

def add_user(*, engine: sa.Engine, name: str, roles: list[str], password: str | None = None,
             display_name: str | None = None, who: Who | None = None) -> str | None:
    """Create account ``name``; returns the generated password when none was given."""
    generated = None
    if password is None:
        password = generated = generate_password()
    _check_password(password)
    chosen = _roles(roles)
    with engine.begin() as conn:
        if conn.scalar(sa.text("SELECT 1 FROM users WHERE name = :n"), {"n": name}):
            raise InvalidAccountError(f"an account called {name!r} exists already")
        try:
            conn.execute(sa.text("INSERT INTO users (name, display_name, roles, password_hash) "
                                 "VALUES (:n, :d, :r, :h)"),
                         {"n": name, "d": display_name, "r": chosen, "h": _hasher().hash(password)})
        except sa.exc.IntegrityError as exc:
            raise InvalidAccountError(f"{name!r} is not a valid account name: lower-case letters, "
                                      "digits, '.', '_' and '-', starting with a letter or digit") from exc
        audit.record_as(conn, who, "user.add", detail={"user": name, "roles": chosen})
    return generated


def list_users(*, engine: sa.Engine) -> list[dict[str, Any]]:
    """Every account: name, display name, roles, disabled, created (never the hash)."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT name, display_name, roles, disabled, created_at FROM users "
                                    "ORDER BY name")).mappings().all()
    return [dict(r) for r in rows]


def any_admin(*, engine: sa.Engine) -> bool:
    """Whether an enabled administrator exists (``landeco serve`` says how to make the first)."""
    with engine.connect() as conn:
        return bool(conn.scalar(sa.text("SELECT EXISTS (SELECT 1 FROM users WHERE NOT disabled "
                                        "AND 'admin' = ANY(roles))")))


def set_disabled(*, engine: sa.Engine, name: str, disabled: bool = True, who: Who | None = None) -> None:
    """Disable (or enable) an account; a disabled one's sessions end at once."""
    with engine.begin() as conn:
        audit.record_as(conn, who, "user.disable" if disabled else "user.enable", detail={"user": name})
        _need(conn.execute(sa.text("UPDATE users SET disabled = :d, updated_at = now() WHERE name = :n"),
                           {"n": name, "d": disabled}), name)
        if disabled:
            conn.execute(sa.text("DELETE FROM sessions WHERE user_name = :n"), {"n": name})
        _changed(conn)


def set_password(*, engine: sa.Engine, name: str, password: str, who: Who | None = None) -> None:
    """Set a new password; the account's page sessions end (its tokens stay)."""
    _check_password(password)
    with engine.begin() as conn:
        audit.record_as(conn, who, "user.password", detail={"user": name})
        _need(conn.execute(sa.text("UPDATE users SET password_hash = :h, updated_at = now() "
                                   "WHERE name = :n"), {"n": name, "h": _hasher().hash(password)}), name)
        conn.execute(sa.text("DELETE FROM sessions WHERE user_name = :n"), {"n": name})


def grant(*, engine: sa.Engine, name: str, role: str, who: Who | None = None) -> list[str]:
    """Give ``role`` to the account; returns its roles."""
    return _change_roles(engine, name, role, add=True, who=who)


def revoke(*, engine: sa.Engine, name: str, role: str, who: Who | None = None) -> list[str]:
    """Take ``role`` from the account; returns its roles."""
    return _change_roles(engine, name, role, add=False, who=who)


def _change_roles(engine: sa.Engine, name: str, role: str, *, add: bool, who: Who | None) -> list[str]:
    _roles([role])
    with engine.begin() as conn:
        roles = conn.scalar(sa.text("SELECT roles FROM users WHERE name = :n FOR UPDATE"), {"n": name})
        if roles is None:
            raise UnknownAccountError(f"no account called {name!r}")
        new = _roles({*roles, role} if add else set(roles) - {role})
        conn.execute(sa.text("UPDATE users SET roles = :r, updated_at = now() WHERE name = :n"),
                     {"n": name, "r": new})
        audit.record_as(conn, who, "user.grant" if add else "user.revoke",
                        detail={"user": name, "role": role, "roles": new})
        _changed(conn)
    return new


# -- API tokens --------------------------------------------------------------------------------

def create_token(*, engine: sa.Engine, name: str, label: str = "",
                 expires_days: float | None = None, who: Who | None = None) -> tuple[int, str]:
    """A new token for account ``name``: ``(id, token)``; the token is shown this once only."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires = _now() + timedelta(days=expires_days) if expires_days else None
    with engine.begin() as conn:
        if not conn.scalar(sa.text("SELECT 1 FROM users WHERE name = :n"), {"n": name}):
            raise UnknownAccountError(f"no account called {name!r}")
        token_id = conn.scalar(sa.text("INSERT INTO api_tokens (user_name, label, token_hash, expires_at) "
                                       "VALUES (:n, :l, :h, :e) RETURNING id"),
                               {"n": name, "l": label, "h": token_hash(token), "e": expires})
        audit.record_as(conn, who, "token.create",
                        detail={"user": name, "token_id": token_id, "label": label,
                                "expires": expires.isoformat() if expires else None})
    return token_id, token


def list_tokens(*, engine: sa.Engine, name: str) -> list[dict[str, Any]]:
    """The account's tokens: id, label, created, expires, last used, revoked (never the token)."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT id, label, created_at, expires_at, last_used_at, revoked_at "
                                    "FROM api_tokens WHERE user_name = :n ORDER BY id"),
                            {"n": name}).mappings().all()
    return [dict(r) for r in rows]


def revoke_token(*, engine: sa.Engine, token_id: int, who: Who | None = None) -> None:
    """Revoke a token: it stops working at once."""
    with engine.begin() as conn:
        done = conn.execute(sa.text("UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now()) "
                                    "WHERE id = :i"), {"i": token_id})
        if done.rowcount:
            audit.record_as(conn, who, "token.revoke", detail={"token_id": token_id})
        _changed(conn)
    if done.rowcount == 0:
        raise UnknownTokenError(f"no token with id {token_id}")


_TOKEN_SQL = sa.text(
    "SELECT t.id, t.last_used_at, t.expires_at, u.name, u.roles, u.display_name FROM api_tokens t "
    "JOIN users u ON u.name = t.user_name WHERE t.token_hash = :h AND t.revoked_at IS NULL "
    "AND (t.expires_at IS NULL OR t.expires_at > now()) AND NOT u.disabled")


def principal_for_token(*, engine: sa.Engine, token: str) -> Principal | None:
    """The account a bearer token acts for, or None (unknown, revoked, expired, account disabled).

    Last use is written at most once a minute per token, so reading costs one indexed SELECT.
    """
    found = _token_lookup(engine, token_hash(token))
    return found[0] if found is not None else None


def _token_lookup(engine: sa.Engine, digest: str) -> tuple[Principal, datetime | None] | None:
    with engine.connect() as conn:
        row = conn.execute(_TOKEN_SQL, {"h": digest}).first()
        if row is None:
            return None
        if row.last_used_at is None or _now() - row.last_used_at > TOUCH_EVERY:
            conn.execute(sa.text("UPDATE api_tokens SET last_used_at = now() WHERE id = :i"), {"i": row.id})
            conn.commit()
    return Principal(row.name, frozenset(row.roles), row.display_name, via="token"), row.expires_at


#: The channel on which every change to accounts or tokens is announced (NOTIFY).
CHANNEL = "landeco_accounts"
_caches: weakref.WeakSet[TokenCache] = weakref.WeakSet()


def _changed(conn: sa.Connection) -> None:
    """Announce a change (delivered when the transaction commits); this process's caches forget now."""
    conn.execute(sa.text("SELECT pg_notify(:c, '')"), {"c": CHANNEL})
    for token_cache in list(_caches):
        token_cache.forget()


class TokenCache:
    """Bearer tokens already checked, so that a script's requests cost no query.

    An entry is trusted for at most :data:`TOUCH_EVERY` (then it is looked up again, which
    also records the last use) and never past the token's expiry. Any change to accounts or
    tokens (:func:`revoke_token`, :func:`set_disabled`, roles, from any process: the command
    line too) is announced with PostgreSQL ``NOTIFY``; a thread listening for it empties the
    cache within milliseconds. While that thread is not listening (starting, or its
    connection lost) nothing is served from the cache.
    """

    def __init__(self, dsn: str | None, max_entries: int = 10_000) -> None:
        self.dsn = dsn
        self.max_entries = max_entries
        self.entries: dict[str, tuple[Principal, float | None, float]] = {}
        self.generation = 0
        self.live = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        _caches.add(self)

    def forget(self) -> None:
        """Drop every entry (a change was announced)."""
        self.generation += 1
        self.entries = {}

    def get(self, digest: str) -> Principal | None:
        """The cached principal of a token's digest, if still to be trusted."""
        if not self.live:
            return None
        hit = self.entries.get(digest)
        if hit is None:
            return None
        principal, expires, fetched = hit
        if time.monotonic() - fetched > TOUCH_EVERY.total_seconds() or (expires is not None
                                                                         and time.time() >= expires):
            return None
        return principal

    def lookup(self, engine: sa.Engine, token: str) -> Principal | None:
        """Look a token up in the database (blocking) and remember the answer."""
        digest = token_hash(token)
        generation = self.generation
        found = _token_lookup(engine, digest)
        if found is None:
            return None
        principal, expires = found
        if self.live and generation == self.generation:  # no change announced meanwhile
            if len(self.entries) >= self.max_entries:
                self.entries = {}
            self.entries[digest] = (principal, expires.timestamp() if expires else None, time.monotonic())
        return principal

    def start(self) -> None:
        """Start listening (a daemon thread with its own connection)."""
        if self.dsn is None or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._listen, name="landeco-token-cache", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop listening; the cache is no longer used."""
        self._stop.set()
        self.live = False
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _listen(self) -> None:
        import psycopg

        while not self._stop.is_set():
            try:
                with psycopg.connect(self.dsn, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.forget()  # anything announced while not listening is unknown
                    self.live = True
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=0.25):
                            self.forget()
            except Exception:
                pass
            finally:
                self.live = False
                self.forget()
            self._stop.wait(1.0)


# -- page sessions -----------------------------------------------------------------------------

def start_session(*, engine: sa.Engine, name: str, max_seconds: float) -> str:
    """A new session for ``name``; returns the cookie's secret (only its sha256 is stored)."""
    secret = secrets.token_urlsafe(32)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO sessions (id, user_name, csrf_secret, expires_at) "
                             "VALUES (:i, :n, :c, now() + make_interval(secs => :s))"),
                     {"i": token_hash(secret), "n": name, "c": secrets.token_urlsafe(24), "s": max_seconds})
        # sessions past their end are removed now and then, by whoever signs in
        conn.execute(sa.text("DELETE FROM sessions WHERE expires_at < now() - interval '1 day'"))
    return secret


def principal_for_session(*, engine: sa.Engine, secret: str, idle_seconds: float) -> Principal | None:
    """The account a session cookie belongs to, or None (unknown, idle or past its end, disabled)."""
    touch = min(TOUCH_EVERY.total_seconds(), idle_seconds / 10)
    with engine.connect() as conn:
        row = conn.execute(sa.text(
            "SELECT s.id, s.csrf_secret, extract(epoch FROM now() - s.last_seen_at) AS idle, "
            "u.name, u.roles, u.display_name FROM sessions s JOIN users u ON u.name = s.user_name "
            "WHERE s.id = :i AND s.expires_at > now() AND NOT u.disabled"),
            {"i": token_hash(secret)}).first()
        if row is None or float(row.idle) >= idle_seconds:
            return None
        if float(row.idle) > touch:
            conn.execute(sa.text("UPDATE sessions SET last_seen_at = now() WHERE id = :i"), {"i": row.id})
            conn.commit()
    return Principal(row.name, frozenset(row.roles), row.display_name, via="session", csrf=row.csrf_secret)


def end_session(*, engine: sa.Engine, secret: str) -> None:
    """Sign out: the session is removed."""
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM sessions WHERE id = :i"), {"i": token_hash(secret)})


# -- signing in --------------------------------------------------------------------------------

def _delay(kind: str, failures: int, cap: int) -> int:
    """Seconds to wait after ``failures`` failures in a row: none at first, then 1, 2, 4 … ``cap``.

    >>> [_delay("user", n, 900) for n in (1, 3, 4, 5, 6, 20)]
    [0, 0, 1, 2, 4, 900]
    """
    over = failures - FREE_FAILURES[kind]
    return 0 if over <= 0 else min(cap, 2 ** (over - 1))


def authenticate(*, engine: sa.Engine, name: str, password: str, address: str | None,
                 delay_cap_seconds: int = 900) -> Principal:
    """The account for ``name`` and ``password``, or an error.

    While an account or an address waits out its delay every attempt is refused
    (:class:`LoginThrottledError`, with the seconds left) without looking at the password;
    each failure makes the next delay longer, a success clears the account's count.
    """
    keys = {"user": f"user:{name}"}
    if address:
        keys["addr"] = f"addr:{address}"
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM login_attempts WHERE last_failure_at < now() - make_interval("
                             "secs => :s)"), {"s": FORGET_AFTER.total_seconds()})
        waits = conn.execute(sa.text("SELECT extract(epoch FROM locked_until - now()) FROM login_attempts "
                                     "WHERE key = ANY(:k) AND locked_until > now()"),
                             {"k": list(keys.values())}).scalars().all()
    if waits:
        raise LoginThrottledError(max(1, math.ceil(max(float(w) for w in waits))))
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT name, roles, display_name, password_hash, disabled FROM users "
                                   "WHERE name = :n"), {"n": name}).first()
    stored = row.password_hash if row is not None and row.password_hash else _dummy_hash()
    ok = _hasher().verify(password, stored)
    if ok and row is not None and row.password_hash and not row.disabled:
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM login_attempts WHERE key = :k"), {"k": keys["user"]})
        return Principal(row.name, frozenset(row.roles), row.display_name, via="session")
    with engine.begin() as conn:
        for kind, key in keys.items():
            failures = conn.scalar(sa.text(
                "INSERT INTO login_attempts AS a (key, failures) VALUES (:k, 1) ON CONFLICT (key) DO UPDATE "
                "SET failures = a.failures + 1, last_failure_at = now() RETURNING failures"), {"k": key})
            wait = _delay(kind, failures, delay_cap_seconds)
            if wait:
                conn.execute(sa.text("UPDATE login_attempts SET locked_until = now() + "
                                     "make_interval(secs => :s) WHERE key = :k"), {"k": key, "s": wait})
    raise InvalidCredentialsError("wrong user name or password")
