"""Password hashing (argon2id) and access tokens (JWT).

Hashing is CPU-bound and deliberately slow; callers run it in a worker thread (the C code
releases the GIL), never on the event loop, and hold no database connection meanwhile.
Hashes are computed and verified by libsodium (PyNaCl), whose argon2id is about a third
cheaper in CPU than argon2-cffi's for the same parameters and writes the same standard
``$argon2id$v=19$m=...,t=...,p=...`` strings. argon2-cffi reads those parameters (to re-hash
old ones) and handles the one case libsodium cannot: a parallelism other than 1.
"""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from typing import Any

import jwt
import nacl.exceptions
import nacl.pwhash
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from app.core.config import Settings, get_settings
from app.core.database import utcnow


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
    s = get_settings()
    if s.argon2_parallelism != 1:  # libsodium's argon2id has a single lane
        return password_hasher().hash(password)
    return nacl.pwhash.argon2id.str(
        password.encode(), opslimit=s.argon2_time_cost, memlimit=s.argon2_memory_cost * 1024
    ).decode()


def argon2_verify(password_hash: str, password: str) -> bool:
    """Whether ``password`` matches the argon2id ``password_hash``."""
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
    return hash_password("dummy password for timing equalisation")


def verify_password(password_hash: str | None, password: str) -> bool:
    """Verify; with ``password_hash=None`` (unknown user) do the same work and fail."""
    ok = argon2_verify(password_hash or _dummy_hash(), password)
    return ok and password_hash is not None


def needs_rehash(password_hash: str) -> bool:
    return password_hasher().check_needs_rehash(password_hash)


def create_access_token(*, subject: str, settings: Settings | None = None) -> str:
    s = settings or get_settings()
    now = utcnow()
    payload = {
        "sub": subject,
        "iat": now,
        "exp": now + timedelta(minutes=s.access_token_expire_minutes),
    }
    return jwt.encode(payload, s.signing_key(), algorithm=s.jwt_algorithm)


def decode_access_token(token: str, settings: Settings | None = None) -> dict[str, Any] | None:
    s = settings or get_settings()
    try:
        return jwt.decode(
            token, s.signing_key(), algorithms=[s.jwt_algorithm], options={"require": ["sub", "exp"]}
        )
    except jwt.PyJWTError:
        return None
