"""Registration, availability, login and user lookups. All user queries live here.

Every check of a password (login, and the password asked again to delete the account or change
it) goes through the login throttles of ``accounts.guard``."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.accounts import confusables, guard
from app.accounts.models import AccountToken, Role, User
from app.accounts.privacy import POLICY_VERSION
from app.accounts.schemas import Availability, TokenResponse, UserPublic
from app.core import security
from app.core.database import release_connection, utcnow
from app.core.errors import Conflict, Forbidden, Unauthorized, Unprocessable
from app.core.throttle import Throttle
from app.mail import service as mail
from app.mail.service import MailKind

USERNAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]{1,30})[A-Za-z0-9]$")
PASSWORD_MIN_LENGTH = 8
#: zxcvbn's score: 3 is "safely unguessable" for an online attack that is throttled.
PASSWORD_MIN_SCORE = 3
_STRONGER_HINT = "Use a longer password: a few uncommon words are easy to remember and hard to guess."

AVAILABILITY_CHECKS = Throttle("availability-checks", "throttle_availability_per_address")


class UsernameTaken(Conflict):
    code = "username_taken"
    message = "This username is already taken."


class EmailTaken(Conflict):
    code = "email_taken"
    message = "An account with this email already exists. Log in instead."


class InvalidCredentials(Unauthorized):
    code = "invalid_credentials"
    message = "Wrong username/email or password."


class WrongPassword(Unauthorized):
    code = "wrong_password"
    message = "The password is wrong."


def username_problem(username: str) -> str | None:
    if not USERNAME_RE.fullmatch(username) or not username.isascii():
        return (
            "Use 3 to 32 characters: letters, digits, '.', '_' or '-', "
            "starting and ending with a letter or digit."
        )
    return None


def fold_email(email: str) -> str:
    """How emails are stored and compared: NFKC, then case-folded (``Élise@`` is ``élise@``)."""
    return unicodedata.normalize("NFKC", email.strip()).casefold()


def normalize_email(email: str) -> tuple[str | None, str | None]:
    """(normalised and folded email, None) or (None, why it is not valid, or could pass for
    another address: ``accounts.confusables``)."""
    if "\x00" in email:
        return None, "An email address cannot contain NUL characters."
    try:
        result = validate_email(email.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        return None, str(exc)
    folded = fold_email(result.normalized)
    problem = confusables.email_problem(folded)
    return (None, problem) if problem else (folded, None)


def _squashed(text: str) -> str:
    """Letters and digits only, case-folded: "Party One!" and "partyone" compare equal."""
    return re.sub(r"[\W_]+", "", unicodedata.normalize("NFKC", text).casefold())


def password_problem(password: str, *, context: Sequence[str]) -> str | None:
    """Why ``password`` is too weak, or None. ``context``: what an attacker would try first
    (the username, the email, the event's name): none may be in it, whatever the spaces,
    case and punctuation (``PartyOne2026!`` for "Party One")."""
    if len(password) < PASSWORD_MIN_LENGTH:
        return f"Use at least {PASSWORD_MIN_LENGTH} characters."
    words = [w for value in context for w in re.split(r"[\W_]+", value.lower()) if len(w) >= 3]
    parts = [*context, *(value.rpartition("@")[0] for value in context if "@" in value)]
    squashed = _squashed(password)
    if any(len(part) >= 4 and part in squashed for part in map(_squashed, parts)):
        return "The password must not contain your username, your email or the event's name."
    from zxcvbn import zxcvbn

    # zxcvbn's cost grows with the length; 72 characters are plenty to judge.
    verdict = zxcvbn(password[:72], user_inputs=[*context, *words])
    if verdict["score"] < PASSWORD_MIN_SCORE:
        feedback = verdict["feedback"]
        warning = (feedback.get("warning") or "").rstrip(".")
        return f"This password is too easy to guess{': ' + warning if warning else ''}. {_STRONGER_HINT}"
    return None


def get_user_by_username(*, session: Session, username: str) -> User | None:
    return session.scalar(select(User).where(func.lower(User.username) == username.lower()))


def get_user_by_email(*, session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(func.lower(User.email) == fold_email(email)))


def get_user_by_login(*, session: Session, login: str) -> User | None:
    login = login.strip()
    if "@" in login:
        return get_user_by_email(session=session, email=login)
    return get_user_by_username(session=session, username=login)


def check_availability(
    *, session: Session, username: str | None, email: str | None
) -> dict[str, Availability]:
    """Availability of the fields given (only those), keyed by field name."""
    result: dict[str, Availability] = {}
    if username is not None:
        value = username.strip()
        problem = username_problem(value)
        if problem:
            result["username"] = Availability(value=value, available=False, reason="invalid", message=problem)
        elif get_user_by_username(session=session, username=value):
            result["username"] = Availability(
                value=value, available=False, reason="taken", message=UsernameTaken.message
            )
        else:
            result["username"] = Availability(value=value, available=True)
    if email is not None:
        value = email.strip()
        normalized, problem = normalize_email(value)
        if normalized is None:
            result["email"] = Availability(value=value, available=False, reason="invalid", message=problem)
        elif get_user_by_email(session=session, email=normalized):
            result["email"] = Availability(
                value=value, available=False, reason="taken", message=EmailTaken.message
            )
        else:
            result["email"] = Availability(value=value, available=True)
    return result


def registration_problems(
    *, session: Session, username: str, email: str, password: str, consent: bool, context: Sequence[str]
) -> dict[str, str]:
    """Every field of a registration form in error, with the error's code (a form shows them
    all at once). Reads only; no hashing."""
    answers = check_availability(session=session, username=username, email=email)
    found = {name: f"{name}_{a.reason}" for name, a in answers.items() if a.reason}
    problems = {name: f"invalid_{name}" if code.endswith("invalid") else code for name, code in found.items()}
    if password_problem(password, context=[username.strip(), email.strip(), *context]):
        problems["password"] = "weak_password"  # noqa: S105 - an error code
    if not consent:
        problems["accept_face_processing"] = "consent_required"
    return problems


def _validated_identity(username: str, email: str, password: str, context: Sequence[str]) -> tuple[str, str]:
    username = username.strip()
    problem = username_problem(username)
    if problem:
        raise Unprocessable(problem, code="invalid_username", field="username")
    normalized, problem = normalize_email(email)
    if normalized is None:
        raise Unprocessable(problem, code="invalid_email", field="email")
    problem = password_problem(password, context=[username, normalized, *context])
    if problem:
        raise Unprocessable(problem, code="weak_password", field="password")
    return username, normalized


def _raise_if_taken(*, session: Session, username: str, email: str) -> None:
    if get_user_by_username(session=session, username=username):
        raise UsernameTaken()
    if get_user_by_email(session=session, email=email):
        raise EmailTaken()


def _insert_user(*, session: Session, user: User) -> None:
    session.add(user)
    try:
        session.flush()
    except IntegrityError as exc:
        # Lost a race with a concurrent registration: the unique index decided.
        text = str(exc.orig)
        if "uq_users_username_lower" in text:
            raise UsernameTaken() from exc
        if "uq_users_email_lower" in text:
            raise EmailTaken() from exc
        raise


def prepare_user(
    *,
    username: str,
    email: str,
    password: str,
    role: Role = Role.guest,
    display_name: str | None = None,
    context: Sequence[str] = (),
    consent: bool = False,
) -> User:
    """A new, unsaved user with validated identity and hashed password. No database work:
    the slow hash happens before any connection is taken. ``context``: more words the
    password must not be built on (the event's name)."""
    username, email = _validated_identity(username, email, password, context)
    return User(
        username=username,
        email=email,
        password_hash=security.hash_password(password),
        display_name=(display_name or "").strip() or None,
        role=role.value,
        consent_at=utcnow() if consent else None,
        consent_version=POLICY_VERSION if consent else None,
    )


def require_consent(accepted: bool) -> None:
    """422 ``consent_required`` unless the guest accepted the face processing policy."""
    if accepted is not True:
        raise Unprocessable(
            "To find your photos we process your face: read GET /api/privacy and accept it "
            "(accept_face_processing: true).",
            code="consent_required",
            field="accept_face_processing",
        )


def add_user(*, session: Session, user: User) -> User:
    """Insert a prepared user; 409 if the username or email is taken (even by a racing request)."""
    _raise_if_taken(session=session, username=user.username, email=user.email)
    _insert_user(session=session, user=user)
    return user


def create_user(
    *,
    session: Session,
    username: str,
    email: str,
    password: str,
    role: Role = Role.guest,
    display_name: str | None = None,
) -> User:
    user = prepare_user(
        username=username, email=email, password=password, role=role, display_name=display_name
    )
    return add_user(session=session, user=user)


def check_login_throttles(*, user: User | None, login: str, attempt: guard.Attempt) -> guard.Gate:
    """The gate of this login attempt (``accounts.guard``), or 429 ``too_many_requests``
    before any password is checked."""
    return guard.open_gate(user_id=user.id if user else None, login=fold_email(login), attempt=attempt)


def authenticate(*, session: Session, user: User | None, password: str, gate: guard.Gate) -> User:
    """``user`` (found by the login) if the password is right; one generic error whatever
    was wrong (a 429 past the address's limit). Failures are counted by ``gate``; a success
    forgets this address's failures for the account. Verifying takes no database connection;
    recording the login does."""
    right = security.verify_password(user.password_hash if user else None, password)
    if user is None or not right:
        raise guard.failed(gate, InvalidCredentials())
    guard.succeeded(gate)
    user = session.merge(user, load=False) if user not in session else user
    if security.needs_rehash(user.password_hash):
        user.password_hash = security.hash_password(password)
    user.last_login_at = utcnow()
    session.flush()
    return user


def log_in(*, session: Session, login: str, password: str, attempt: guard.Attempt) -> User:
    """The user of ``login`` if ``password`` is right (throttled, see ``accounts.guard``). The
    session's connection goes back to the pool while argon2 runs."""
    user = get_user_by_login(session=session, login=login)
    gate = check_login_throttles(user=user, login=login, attempt=attempt)
    release_connection(session)
    return authenticate(session=session, user=user, password=password, gate=gate)


def check_password(*, user: User, password: str, attempt: guard.Attempt, error: Unauthorized) -> None:
    """The password asked again of a signed-in user; ``error`` when it is wrong. Throttled and
    counted as a login on the account, so a held session guesses no faster than a login form."""
    gate = guard.open_gate(user_id=user.id, login=user.username, attempt=attempt)
    if not security.verify_password(user.password_hash, password):
        raise guard.failed(gate, error)
    guard.succeeded(gate)


def get_user(*, session: Session, user_id: int) -> User | None:
    return session.get(User, user_id)


def require_organizer(user: User) -> User:
    if not user.is_organizer:
        raise Forbidden("Only organizers can manage events.", code="organizer_required")
    return user


def token_for(user: User) -> TokenResponse:
    """The login answer for ``user``: a fresh access token and the public profile."""
    user_public = UserPublic.model_validate(user)
    token = security.create_access_token(subject=str(user_public.id), version=user.token_version)
    return TokenResponse(access_token=token, user=user_public)


def check_erasable(
    *, user: User, password: str, holds_events: bool | None = None, attempt: guard.Attempt = guard.LOCAL
) -> None:
    """An account may be erased by its owner with the right password (throttled as a login),
    and only if it holds no events (``app.actions.erasure.erase_user`` erases it). An
    organizer's is refused unless ``holds_events`` is known to be False."""
    check_password(user=user, password=password, attempt=attempt, error=WrongPassword())
    if user.is_organizer and holds_events is not False:
        raise Conflict(
            "An organizer's account holds events: delete the events first (wait until their "
            "deletion has finished), or ask an admin.",
            code="organizer_has_events",
        )


def delete_account(*, session: Session, user_id: int) -> None:
    """The account's row goes (memberships, "not me" answers and selfie changes with it, by
    their foreign keys); what other domains keep of the user is erased before, by the caller."""
    session.execute(delete(User).where(User.id == user_id))
    session.flush()


def revoke_tokens(*, session: Session, user: User) -> None:
    """Every access token issued to ``user`` so far stops working (logout, password change)."""
    user = session.merge(user, load=False) if user not in session else user
    user.token_version += 1
    session.flush()


def change_password(
    *,
    session: Session,
    user: User,
    current: str,
    new: str,
    context: Sequence[str],
    attempt: guard.Attempt = guard.LOCAL,
) -> User:
    """Check ``current`` (throttled as a login), set ``new`` (as strong as at registration)
    and revoke every token; the caller hands out a fresh one."""
    check_password(
        user=user, password=current, attempt=attempt, error=WrongPassword("The current password is wrong.")
    )
    problem = password_problem(new, context=[user.username, user.email, *context])
    if problem:
        raise Unprocessable(problem, code="weak_password", field="new_password")
    new_hash = security.hash_password(new)
    user = session.merge(user, load=False) if user not in session else user
    user.password_hash = new_hash
    revoke_tokens(session=session, user=user)
    forget_links(session=session, user_id=user.id)
    return user


def forget_links(*, session: Session, user_id: int) -> None:
    """The account's reset and sign-in tokens die, with the unsent mails that carry them (a
    password change, a reset, a sign-in)."""
    kinds = ("reset", "signin")
    session.execute(
        delete(AccountToken).where(AccountToken.user_id == user_id, AccountToken.purpose.in_(kinds))
    )
    mail.cancel_pending(session=session, user_id=user_id, kinds=[MailKind.reset, MailKind.signin])
