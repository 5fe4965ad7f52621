"""Password hashing (argon2id) and access tokens (JWT).

Hashing is CPU-bound and deliberately slow; callers run it in a worker thread (the C code
releases the GIL), never on the event loop, and hold no database connection meanwhile.
Hashes are computed and verified by libsodium (PyNaCl), whose argon2id is about a third
cheaper in CPU than argon2-cffi's for the same parameters and writes the same standard
``$argon2id$v=19$m=...,t=...,p=...`` strings. argon2-cffi reads those parameters (to re-hash
old ones) and handles the one case libsodium cannot: a parallelism other than 1.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from functools import lru_cache
from typing import Any, TypeVar

import jwt
import nacl.exceptions
import nacl.pwhash
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from app.core.config import Settings, get_settings
from app.core.database import utcnow

T = TypeVar("T")
_hash_pool: ThreadPoolExecutor | None = None
_hash_pool_pid = 0


def _lower_this_thread_priority() -> None:
    # On Linux a thread is a task with its own nice value: only the hashing threads yield.
    tid = threading.get_native_id()
    niceness = get_settings().password_hash_nice
    with contextlib.suppress(OSError):  # not Linux, or not allowed: hash at the normal priority
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + niceness)


def run_in_hash_thread(fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn`` in this process's hashing threads, at a lower CPU priority than the rest of
    the request work: in a crowd, the cheap requests (an upload, a code check) are answered
    while the hashes share what CPU is left. Callers are threads already (sync routes)."""
    global _hash_pool, _hash_pool_pid
    if _hash_pool is None or _hash_pool_pid != os.getpid():  # a forked worker makes its own
        _hash_pool = ThreadPoolExecutor(
            max_workers=2, thread_name_prefix="argon2", initializer=_lower_this_thread_priority
        )
        _hash_pool_pid = os.getpid()
    return _hash_pool.submit(fn, *args).result()


@lru_cache
def password_hasher() -> PasswordHasher:
    s = get_settings()
    return PasswordHasher(
        time_cost=s.argon2_time_cost,
        memory_cost=s.argon2_memory_cost,
        parallelism=s.argon2_parallelism,
        type=Type.ID,
    )


def hash_password(password: str) -> str:
    return run_in_hash_thread(_hash, password)


def _hash(password: str) -> str:
    s = get_settings()
    if s.argon2_parallelism != 1:  # libsodium's argon2id has a single lane
        return password_hasher().hash(password)
    return nacl.pwhash.argon2id.str(
        password.encode(), opslimit=s.argon2_time_cost, memlimit=s.argon2_memory_cost * 1024
    ).decode()


def argon2_verify(password_hash: str, password: str) -> bool:
    """Whether ``password`` matches the argon2id ``password_hash``."""
    return run_in_hash_thread(_verify, password_hash, password)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return bool(nacl.pwhash.argon2id.verify(password_hash.encode(), password.encode()))
    except nacl.exceptions.InvalidkeyError:
        return False
    except (nacl.exceptions.CryptoError, ValueError):
        pass  # a hash libsodium cannot read (parallelism > 1, another variant)
    try:
        return password_hasher().verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


@lru_cache
def _dummy_hash() -> str:
    # Hashed with the current parameters so verifying an unknown login costs exactly
    # what verifying a real one does: response time does not reveal which accounts exist.
    return _hash("dummy password for timing equalisation")


def verify_password(password_hash: str | None, password: str) -> bool:
    """Verify; with ``password_hash=None`` (unknown user) do the same work and fail."""
    ok = argon2_verify(password_hash or _dummy_hash(), password)
    return ok and password_hash is not None


def needs_rehash(password_hash: str) -> bool:
    return password_hasher().check_needs_rehash(password_hash)


def create_access_token(*, subject: str, version: int = 0, settings: Settings | None = None) -> str:
    """A signed token for user ``subject``; ``version`` is the user's token version, so that
    bumping it revokes every token issued before."""
    s = settings or get_settings()
    now = utcnow()
    payload = {
        "sub": subject,
        "ver": version,
        "iat": now,
        "exp": now + timedelta(minutes=s.access_token_expire_minutes),
    }
    return jwt.encode(payload, s.signing_key(), algorithm=s.jwt_algorithm)


def decode_access_token(token: str, settings: Settings | None = None) -> dict[str, Any] | None:
    s = settings or get_settings()
    try:
        return jwt.decode(
            token, s.signing_key(), algorithms=[s.jwt_algorithm], options={"require": ["sub", "exp", "ver"]}
        )
    except jwt.PyJWTError:
        return None


def random_token(size: int = 32) -> str:
    """An unguessable token for a link (``size`` random bytes, URL-safe)."""
    return secrets.token_urlsafe(size)


def token_digest(token: str) -> str:
    """How a token sent by mail is stored: its SHA-256, so a copy of the database opens nothing."""
    return hashlib.sha256(token.encode()).hexdigest()


def _mac(purpose: str, value: str, settings: Settings) -> str:
    key = settings.signing_key().encode()
    digest = hmac.new(key, f"{purpose}\0{value}".encode(), hashlib.sha256).digest()[:18]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def sign(purpose: str, value: str, settings: Settings | None = None) -> str:
    """``value`` with a MAC for ``purpose`` (``value.mac``): a link that needs no stored row
    (one-click unsubscribe). ``value`` must not contain a dot."""
    return f"{value}.{_mac(purpose, value, settings or get_settings())}"


def unsign(purpose: str, signed: str, settings: Settings | None = None) -> str | None:
    """The value of a ``sign``ed string for ``purpose``, or None if it was not signed so."""
    value, _, mac = signed.rpartition(".")
    if not value or not hmac.compare_digest(mac, _mac(purpose, value, settings or get_settings())):
        return None
    return value
