"""The links and codes mailed to an account: verify its address, reset its password, sign in
without it. All their queries live here.

A token is 32 random bytes in the link; only its SHA-256 is stored. Each is single-use and
short-lived (verify 7 days, reset 1 hour, sign-in 15 minutes); a password change deletes the
account's reset and sign-in tokens, and unsent mails carrying them. A sign-in mail also holds
an 8-digit code for a phone that cannot open the link; five wrong codes kill it.

Requests that mail a link answer the same whether the account exists or not: they are
throttled per client address (429, whatever address is asked about), and per account, where
the limit silently sends nothing, so that neither a 429 nor a silence tells an account exists.
"""

from __future__ import annotations

import enum
import logging
import secrets
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from app.accounts import guard, service
from app.accounts.models import AccountToken, User
from app.core import security
from app.core.database import session_scope, utcnow
from app.core.errors import AppError, Unprocessable
from app.core.throttle import Throttle
from app.mail import service as mail
from app.mail.service import MailKind

log = logging.getLogger("app.accounts")
MAIL_REQUESTS = Throttle("mail-requests-address", "throttle_mail_requests_per_address")
MAILS_PER_ACCOUNT = Throttle("mails-account", "throttle_mails_per_account")
LINK_MAILS = Throttle("link-mails", "throttle_link_mails_total")
CODE_ATTEMPTS = 5
CODE_DIGITS = 8


class Purpose(enum.StrEnum):
    verify = "verify"
    reset = "reset"
    signin = "signin"


LIFETIMES = {
    Purpose.verify: timedelta(days=7),
    Purpose.reset: timedelta(hours=1),
    Purpose.signin: timedelta(minutes=15),
}
#: The page each link opens; the token is its last path segment.
PAGES = {Purpose.verify: "/verify-email/", Purpose.reset: "/reset-password/", Purpose.signin: "/login/email/"}


class InvalidToken(AppError):
    status_code = 400
    code = "invalid_token"
    message = "This link or code no longer works (used, expired or replaced): ask for a new one."


def _code_digest(user_id: int, code: str) -> str:
    return security.token_digest(f"{user_id}:{code}:{security.sign('signin-code', str(user_id))}")


def _issue(
    session: Session, user: User, purpose: Purpose, *, with_code: bool = False
) -> tuple[str, str | None]:
    """A new token (and code) of ``purpose`` for ``user``; older unused ones of that purpose die."""
    session.execute(
        delete(AccountToken).where(AccountToken.user_id == user.id, AccountToken.purpose == purpose)
    )
    token = security.random_token()
    code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}" if with_code else None
    session.add(
        AccountToken(
            user_id=user.id,
            purpose=purpose.value,
            token_hash=security.token_digest(token),
            code_hash=_code_digest(user.id, code) if code else None,
            email=user.email,
            expires_at=utcnow() + LIFETIMES[purpose],
        )
    )
    return token, code


def _mail(session: Session, user: User, purpose: Purpose, token: str, **context: str) -> None:
    mail.enqueue(
        session=session,
        kind=MailKind(purpose.value),
        to=user.email,
        language=user.language,
        context={
            "name": user.display_name or user.username,
            "username": user.username,
            "url": mail.link(PAGES[purpose] + token),
            **context,
        },
        user_id=user.id,
    )


def send_verification(*, session: Session, user: User) -> None:
    """Mail ``user`` a link that proves their address (after registration, or a change)."""
    token, _ = _issue(session, user, Purpose.verify)
    _mail(session, user, Purpose.verify, token)


def _live(session: Session, purpose: Purpose, token: str) -> AccountToken:
    row = session.scalar(
        select(AccountToken).where(
            AccountToken.token_hash == security.token_digest(token), AccountToken.purpose == purpose
        )
    )
    if row is None or row.used_at is not None or row.expires_at <= utcnow():
        raise InvalidToken()
    return row


def _use(session: Session, row: AccountToken) -> User:
    """Spend ``row`` (once: a concurrent use of the same token loses) and return its user, whose
    address it proves if it is still the account's."""
    spent = session.execute(
        update(AccountToken)
        .where(AccountToken.id == row.id, AccountToken.used_at.is_(None))
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    user = session.get(User, row.user_id)
    if getattr(spent, "rowcount", 0) != 1 or user is None or user.email != row.email:
        raise InvalidToken()
    if user.email_verified_at is None:
        user.email_verified_at = utcnow()
    session.flush()
    return user


def verify_email(*, session: Session, token: str) -> User:
    """The address the link was sent to is the account's, proven: 400 ``invalid_token`` if the
    link was used, expired, or the account's address changed since."""
    return _use(session, _live(session, Purpose.verify, token))


def _requested(session: Session, email: str, address: str) -> User | None:
    """The account a reset or sign-in link is asked for, if it exists and may get one more
    mail; throttled per client address (429) whatever the answer."""
    MAIL_REQUESTS.check(address)
    MAIL_REQUESTS.hit(address)
    normalized, _ = service.normalize_email(email)
    user = service.get_user_by_email(session=session, email=normalized) if normalized else None
    if user is None or MAILS_PER_ACCOUNT.wait(str(user.id)) is not None:
        return None
    if LINK_MAILS.wait("all") is not None:
        log.warning("THROTTLE_LINK_MAILS_TOTAL reached: a reset or sign-in link was not mailed")
        return None
    MAILS_PER_ACCOUNT.hit(str(user.id))
    LINK_MAILS.hit("all")
    return user


def request_password_reset(*, session: Session, email: str, address: str) -> None:
    """Mail a reset link to the account of ``email``, if there is one (nothing says which)."""
    user = _requested(session, email, address)
    if user is not None:
        token, _ = _issue(session, user, Purpose.reset)
        _mail(session, user, Purpose.reset, token)


def reset_password(*, session: Session, token: str, password: str) -> User:
    """Set a new password (as strong as at registration) from a reset link: the link and every
    other one of the account die, and every access token issued before stops working."""
    row = _live(session, Purpose.reset, token)
    user = session.get(User, row.user_id)
    if user is None:
        raise InvalidToken()
    problem = service.password_problem(password, context=[user.username, user.email])
    if problem:
        raise Unprocessable(problem, code="weak_password", field="password")
    new_hash = security.hash_password(password)
    user = _use(session, row)
    user.password_hash = new_hash
    service.forget_links(session=session, user_id=user.id)
    service.revoke_tokens(session=session, user=user)
    return user


def request_sign_in(*, session: Session, email: str, address: str) -> None:
    """Mail a sign-in link and code to the account of ``email``, if there is one."""
    user = _requested(session, email, address)
    if user is not None:
        token, code = _issue(session, user, Purpose.signin, with_code=True)
        _mail(session, user, Purpose.signin, token, code=f"{code[:4]} {code[4:]}" if code else "")


def sign_in(
    *, session: Session, token: str | None = None, email: str | None = None, code: str | None = None
) -> User:
    """The account of a sign-in link (``token``), or of ``email`` and the code mailed to it.
    A wrong code counts against the account's live code: five, and it dies."""
    if token:
        row = _live(session, Purpose.signin, token)
    else:
        row = _by_code(session, email or "", "".join((code or "").split()))
    user = _use(session, row)
    user.last_login_at = utcnow()
    service.forget_links(session=session, user_id=user.id)
    return user


def _by_code(session: Session, email: str, code: str) -> AccountToken:
    normalized, _ = service.normalize_email(email)
    user = service.get_user_by_email(session=session, email=normalized) if normalized else None
    if user is None or not code.isdigit() or len(code) != CODE_DIGITS:
        raise InvalidToken()
    row = session.scalar(
        select(AccountToken).where(
            AccountToken.user_id == user.id,
            AccountToken.purpose == Purpose.signin,
            AccountToken.used_at.is_(None),
            AccountToken.expires_at > utcnow(),
            AccountToken.code_attempts < CODE_ATTEMPTS,
        )
    )
    if row is None:
        raise InvalidToken()
    if not secrets.compare_digest(row.code_hash or "", _code_digest(user.id, code)):
        # Counted in a unit of work of its own: the guess stays spent when this request's
        # transaction rolls back with the error.
        with session_scope() as counting:
            counting.execute(
                update(AccountToken)
                .where(AccountToken.id == row.id)
                .values(code_attempts=AccountToken.code_attempts + 1)
            )
        raise InvalidToken()
    return row


def resend_verification(*, session: Session, user: User) -> None:
    """A new verification link for a signed-in account whose address is not verified yet
    (429 past the account's mail limit); nothing when it is verified already."""
    if user.email_verified_at is not None:
        return
    MAILS_PER_ACCOUNT.check(str(user.id))
    MAILS_PER_ACCOUNT.hit(str(user.id))
    send_verification(session=session, user=session.merge(user, load=False) if user not in session else user)


def change_email(*, session: Session, user: User, email: str, password: str, attempt: guard.Attempt) -> User:
    """Move the account to ``email`` (the password asked again, throttled as a login): it is
    unverified until the link mailed to it is opened, and gets no notification meanwhile."""
    service.check_password(user=user, password=password, attempt=attempt, error=service.WrongPassword())
    normalized, problem = service.normalize_email(email)
    if normalized is None:
        raise Unprocessable(problem, code="invalid_email", field="email")
    user = session.merge(user, load=False) if user not in session else user
    if normalized == user.email:
        return user
    if service.get_user_by_email(session=session, email=normalized) is not None:
        raise service.EmailTaken()
    MAILS_PER_ACCOUNT.check(str(user.id))
    MAILS_PER_ACCOUNT.hit(str(user.id))
    user.email, user.email_verified_at = normalized, None
    session.flush()
    send_verification(session=session, user=user)
    return user


def user_tokens(*, session: Session, user_id: int) -> list[dict[str, object]]:
    """The links mailed to an account, for its export: what for, to which address, when (never
    the token, which is not kept)."""
    rows = session.scalars(
        select(AccountToken).where(AccountToken.user_id == user_id).order_by(AccountToken.id)
    )
    return [
        {
            "purpose": r.purpose,
            "email": r.email,
            "created_at": r.created_at,
            "expires_at": r.expires_at,
            "used_at": r.used_at,
        }
        for r in rows
    ]
