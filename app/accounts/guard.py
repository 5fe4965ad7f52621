"""The login throttles: which password attempts are checked at all, and what a wrong one
costs. Logins and the password asked again (account deletion, password change) go through
the same gate, so a held session guesses no faster than a login form.

Counted failures, each in a moving window (``app.core.throttle``; limits in the settings):

- per account and address (``THROTTLE_LOGIN_FAILURES_PER_ACCOUNT_ADDRESS``): one place guessing
  one account; past it, attempts from there on that account are refused unchecked;
- per account (``THROTTLE_LOGIN_FAILURES_PER_ACCOUNT``): the account is under attack from many
  places; past it, attempts without a device cookie of the account are refused unchecked;
- per device (``THROTTLE_LOGIN_FAILURES_PER_DEVICE``): a browser holding a device cookie of the
  account (``accounts.devices``) is not subject to the two limits above, which an attacker
  fills, but to its own; past it, it is treated as any other browser;
- per address (``THROTTLE_LOGIN_FAILURES_PER_ADDRESS``): many accounts guessed from one place
  (a venue shares one); past it, the password is still checked and a right one gets in, but a
  wrong one is a 429, and an unknown login is refused without spending a hash on it.

A refusal is the same whatever the password, so it teaches an attacker nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.accounts import devices
from app.core.errors import AppError
from app.core.throttle import Throttle

ACCOUNT_ADDRESS = Throttle("login-failures-account-address", "throttle_login_failures_per_account_address")
ACCOUNT = Throttle("login-failures-account", "throttle_login_failures_per_account")
ADDRESS = Throttle("login-failures-address", "throttle_login_failures_per_address")
DEVICE = Throttle("login-failures-device", "throttle_login_failures_per_device")
TOO_MANY_LOGINS = "Too many failed logins. Wait a few minutes, or check your username and password."
UNDER_ATTACK = (
    "Too many failed logins on this account lately. Log in from a browser you used before, or wait a while."
)


@dataclass(frozen=True)
class Attempt:
    """Where a password attempt comes from: the client's address and its device cookie."""

    address: str
    device_cookie: str | None = None


#: For callers without a request (the command line, tests).
LOCAL = Attempt(address="local")


@dataclass(frozen=True)
class Gate:
    """An attempt let through to the password check, and how to count its outcome."""

    account: str  # the throttles' key of the account
    address: str
    device: str | None  # the browser's device of the account, if it holds a valid cookie
    trusted: bool  # that device is under its own limit: the account's limits do not apply
    strict: bool  # the address is past its limit: a wrong password is a 429


def account_key(user_id: int | None, login: str) -> str:
    # An account is counted under its id whatever login names it; an unknown login under
    # its text, so an attacker learns nothing from when the throttle starts.
    return f"user:{user_id}" if user_id is not None else f"login:{login}"


def open_gate(*, user_id: int | None, login: str, attempt: Attempt) -> Gate:
    """The gate for an attempt on ``user_id`` (None: no such account, named ``login``), or
    429 ``too_many_requests`` (with ``Retry-After``) before any password is checked."""
    account = account_key(user_id, login)
    device = devices.trusted_device(attempt.device_cookie, user_id) if user_id is not None else None
    if device is not None and DEVICE.wait(device) is None:
        return Gate(account, attempt.address, device, trusted=True, strict=False)
    ACCOUNT_ADDRESS.check(account, attempt.address, message=TOO_MANY_LOGINS)
    ACCOUNT.check(account, message=UNDER_ATTACK)
    strict = ADDRESS.wait(attempt.address) is not None
    if strict and user_id is None:
        ADDRESS.check(attempt.address, message=TOO_MANY_LOGINS)
    return Gate(account, attempt.address, device, trusted=False, strict=strict)


def failed(gate: Gate, error: AppError) -> AppError:
    """Count a wrong password; the error to answer (``error``, or 429 past the address's limit)."""
    if gate.trusted and gate.device is not None:
        DEVICE.hit(gate.device)
    else:
        ACCOUNT_ADDRESS.hit(gate.account, gate.address)
        ACCOUNT.hit(gate.account)
    ADDRESS.hit(gate.address)
    if gate.strict:
        return ADDRESS.refusal(gate.address, message=TOO_MANY_LOGINS) or error
    return error


def succeeded(gate: Gate) -> None:
    """A right password forgets this address's and this device's failures on the account;
    the account's and the address's own counts stay, an attacker's among them."""
    ACCOUNT_ADDRESS.clear(gate.account, gate.address)
    if gate.device is not None:
        DEVICE.clear(gate.device)
