"""Device cookies (OWASP, "Slow Down Online Guessing Attacks with Device Cookies"): proof that
a browser logged in to an account before.

A successful login or registration gives the browser a token ``<user id>.<nonce>.<mac>``, an
HMAC under the server's key, in the long-lived HttpOnly cookie ``device`` (the last few
accounts used on the browser, so a shared tablet works for each). An attacker guessing
passwords from elsewhere has no such cookie for the victim's account and cannot make one, so
the login throttles (``accounts.guard``) can refuse every untrusted attempt on an account under
attack while its owner, on a browser they used before, still gets in with the right password.
A device's own wrong passwords are counted under its nonce.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from starlette.requests import Request
from starlette.responses import Response

from app.core.config import get_settings

DEVICE_COOKIE = "device"
#: Accounts remembered per browser (the newest first).
MAX_ACCOUNTS = 5
#: 400 days: the longest lifetime browsers keep a cookie for.
MAX_AGE = 400 * 24 * 3600
_TOKEN = re.compile(r"([1-9][0-9]{0,17})\.([A-Za-z0-9_-]{16})\.([0-9a-f]{32})", re.ASCII)


def _mac(user_id: int, nonce: str) -> str:
    key = get_settings().signing_key().encode()
    return hmac.new(key, f"device:{user_id}:{nonce}".encode(), hashlib.sha256).hexdigest()[:32]


def new_token(user_id: int) -> str:
    nonce = secrets.token_urlsafe(12)
    return f"{user_id}.{nonce}.{_mac(user_id, nonce)}"


def _tokens(cookie: str | None) -> list[str]:
    return [t for t in (cookie or "")[:1024].split("~") if t][:MAX_ACCOUNTS]


def trusted_device(cookie: str | None, user_id: int) -> str | None:
    """The id of this browser's device for ``user_id`` (its nonce) when ``cookie`` holds a
    valid token of that account, else None."""
    for token in _tokens(cookie):
        match = _TOKEN.fullmatch(token)
        if match and int(match[1]) == user_id and hmac.compare_digest(_mac(user_id, match[2]), match[3]):
            return match[2]
    return None


def remember_device(request: Request, response: Response, user_id: int) -> None:
    """Set the device cookie on ``response``: the browser's tokens with one for ``user_id``
    first (a browser that had one keeps it, so its failure count stays its own)."""
    cookie = request.cookies.get(DEVICE_COOKIE)
    device = trusted_device(cookie, user_id)
    mine = [t for t in _tokens(cookie) if device is not None and f".{device}." in t]
    others = [t for t in _tokens(cookie) if _TOKEN.fullmatch(t) and not t.startswith(f"{user_id}.")]
    tokens = (mine or [new_token(user_id)]) + others
    secure = get_settings().environment != "development" or request.url.scheme == "https"
    response.set_cookie(
        DEVICE_COOKIE,
        "~".join(tokens[:MAX_ACCOUNTS]),
        max_age=MAX_AGE,
        httponly=True,
        samesite="lax",
        secure=secure,
    )
