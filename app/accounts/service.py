"""Registration, availability, login and user lookups. All user queries live here."""

from __future__ import annotations

import re

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.accounts.models import Role, User
from app.accounts.schemas import Availability, TokenResponse, UserPublic
from app.core import security
from app.core.database import utcnow
from app.core.errors import Conflict, Forbidden, Unauthorized, Unprocessable

USERNAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]{1,30})[A-Za-z0-9]$")
PASSWORD_MIN_LENGTH = 8
# The handful of passwords every credential-stuffing list starts with.
_COMMON_PASSWORDS = frozenset(
    (
        "password",
        "password1",
        "password123",
        "12345678",
        "123456789",
        "1234567890",
        "qwertyuiop",
        "qwerty123",
        "azertyuiop",
        "iloveyou",
        "sunshine",
        "princess",
        "football",
        "baseball",
        "welcome1",
        "admin123",
        "letmein1",
        "motdepasse",
        "11111111",
        "00000000",
        "abcdefgh",
        "abcd1234",
        "trustno1",
        "superman",
    )
)


class UsernameTaken(Conflict):
    code = "username_taken"
    message = "This username is already taken."


class EmailTaken(Conflict):
    code = "email_taken"
    message = "An account with this email already exists. Log in instead."


class InvalidCredentials(Unauthorized):
    code = "invalid_credentials"
    message = "Wrong username/email or password."


def username_problem(username: str) -> str | None:
    if not USERNAME_RE.fullmatch(username) or not username.isascii():
        return (
            "Use 3 to 32 characters: letters, digits, '.', '_' or '-', "
            "starting and ending with a letter or digit."
        )
    return None


def normalize_email(email: str) -> tuple[str | None, str | None]:
    """(normalised email, None) or (None, why it is not valid)."""
    if "\x00" in email:
        return None, "An email address cannot contain NUL characters."
    try:
        result = validate_email(email.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        return None, str(exc)
    return result.normalized, None


def password_problem(password: str, *, username: str, email: str) -> str | None:
    if len(password) < PASSWORD_MIN_LENGTH:
        return f"Use at least {PASSWORD_MIN_LENGTH} characters."
    lowered = password.lower()
    if lowered in _COMMON_PASSWORDS or len(set(password)) < 3:
        return "This password is too easy to guess."
    if username.lower() in lowered or lowered == email.lower():
        return "The password must not contain your username or be your email."
    return None


def get_user_by_username(*, session: Session, username: str) -> User | None:
    return session.scalar(select(User).where(func.lower(User.username) == username.lower()))


def get_user_by_email(*, session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(func.lower(User.email) == email.lower()))


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


def _validated_identity(username: str, email: str, password: str) -> tuple[str, str]:
    username = username.strip()
    problem = username_problem(username)
    if problem:
        raise Unprocessable(problem, code="invalid_username", field="username")
    normalized, problem = normalize_email(email)
    if normalized is None:
        raise Unprocessable(problem, code="invalid_email", field="email")
    problem = password_problem(password, username=username, email=normalized)
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
) -> User:
    """A new, unsaved user with validated identity and hashed password. No database work:
    the slow hash happens before any connection is taken."""
    username, email = _validated_identity(username, email, password)
    return User(
        username=username,
        email=email,
        password_hash=security.hash_password(password),
        display_name=(display_name or "").strip() or None,
        role=role.value,
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


def authenticate(*, session: Session, user: User | None, password: str) -> User:
    """``user`` (found by its login) if the password is right; one generic error whatever
    was wrong. Verifying takes no database connection; recording the login does."""
    if not security.verify_password(user.password_hash if user else None, password):
        raise InvalidCredentials()
    assert user is not None
    user = session.merge(user, load=False) if user not in session else user
    if security.needs_rehash(user.password_hash):
        user.password_hash = security.hash_password(password)
    user.last_login_at = utcnow()
    session.flush()
    return user


def get_user(*, session: Session, user_id: int) -> User | None:
    return session.get(User, user_id)


def require_organizer(user: User) -> User:
    if not user.is_organizer:
        raise Forbidden("Only organizers can manage events.", code="organizer_required")
    return user


def token_for(user: User) -> TokenResponse:
    """The login answer for ``user``: a fresh access token and the public profile."""
    user_public = UserPublic.model_validate(user)
    return TokenResponse(
        access_token=security.create_access_token(subject=str(user_public.id)), user=user_public
    )
