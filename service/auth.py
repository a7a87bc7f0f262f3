"""API keys: ``Authorization: Bearer tg_<key_id>_<secret>``, one project per key.

A key is 12 random characters of id (looked up) and 256 random bits of secret; only the SHA-256 of
the secret is stored, and the presented secret's hash is compared with :func:`hmac.compare_digest`
(constant time). A high-entropy secret needs no slow password hash: its SHA-256 cannot be inverted
by guessing. Verified keys are remembered for :data:`CACHE_SECONDS` per process, so a revocation
takes effect within that time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
import threading
import time

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from service.db import transaction
from service.errors import ApiError
from service.models import ApiKey, utcnow

PREFIX = "tg"
#: seconds a verified key is trusted without reading the database again
CACHE_SECONDS = 10.0
_ID_ALPHABET = string.ascii_lowercase + string.digits
KEY_ID_LENGTH = 12


def secret_hash(secret: str) -> str:
    """Hex SHA-256 of a key's secret part (what the database stores)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def create_api_key(
    session_factory: sessionmaker[Session], project: str, name: str | None = None
) -> tuple[ApiKey, str]:
    """Store a new key of ``project``; ``(row, key)`` — the plain key exists only in this return value."""
    key_id = "".join(secrets.choice(_ID_ALPHABET) for _ in range(KEY_ID_LENGTH))
    secret = secrets.token_urlsafe(32)
    row = ApiKey(
        key_id=key_id, project=project, secret_sha256=secret_hash(secret), name=name, created_at=utcnow()
    )
    with transaction(session_factory) as session:
        session.add(row)
    return row, f"{PREFIX}_{key_id}_{secret}"


def revoke_api_key(session_factory: sessionmaker[Session], key_id: str) -> bool:
    """Revoke key ``key_id`` (the part after ``tg_``); False when there is no such active key."""
    with transaction(session_factory) as session:
        done = session.execute(
            update(ApiKey)
            .where(ApiKey.key_id == key_id, ApiKey.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        ).rowcount
    return bool(done)


def unauthorized(detail: str) -> ApiError:
    """401 with the ``WWW-Authenticate: Bearer`` challenge."""
    return ApiError(401, detail, headers={"WWW-Authenticate": 'Bearer realm="taskgrouper"'})


class KeyVerifier:
    """Maps a presented key to ``(key_id, project)`` or raises 401; caches verified keys briefly."""

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self.session_factory = session_factory
        self._cache: dict[str, tuple[str, str, float]] = {}
        self._lock = threading.Lock()

    def cached(self, key: str) -> tuple[str, str] | None:
        """:meth:`verify` from the cache alone: ``None`` when the key must be looked up."""
        key_id, secret = _split(key)
        with self._lock:
            entry = self._cache.get(key_id)
        if entry is None or entry[2] < time.monotonic():
            return None
        return _check(key_id, entry, secret)

    def verify(self, key: str) -> tuple[str, str]:
        """``(key_id, project)`` of a valid, unrevoked key; :class:`ApiError` 401 otherwise."""
        key_id, secret = _split(key)
        with self.session_factory() as session:
            row = session.get(ApiKey, key_id)
        if row is None or row.revoked_at is not None:
            raise unauthorized("unknown or revoked API key")
        entry = (row.secret_sha256, row.project, time.monotonic() + CACHE_SECONDS)
        with self._lock:
            self._cache[key_id] = entry
        return _check(key_id, entry, secret)


def _check(key_id: str, entry: tuple[str, str, float], secret: str) -> tuple[str, str]:
    if not hmac.compare_digest(entry[0], secret_hash(secret)):
        raise unauthorized("unknown or revoked API key")
    return key_id, entry[1]


def _split(key: str) -> tuple[str, str]:
    parts = key.split("_", 2)
    if (
        len(parts) != 3
        or parts[0] != PREFIX
        or len(parts[1]) != KEY_ID_LENGTH
        or not set(parts[1]) <= set(_ID_ALPHABET)
        or not parts[2]
    ):
        raise unauthorized("malformed API key (expected tg_<id>_<secret>)")
    return parts[1], parts[2]
