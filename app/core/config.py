"""The application's settings, read from the environment (and an optional ``.env``).

Every variable is documented in docs/OPERATIONS.md (``tests/test_docs.py`` checks it).
``get_settings()`` is cached per process. The Gunicorn server's own (HOST, PORT,
WEB_CONCURRENCY, GUNICORN_*, ACCESS_LOG, LOG_LEVEL, NOFILE_LIMIT) are ``ServerSettings`` of
``app.core.server_config``, re-exported here.
In production a real ``SECRET_KEY`` is mandatory; in development one is generated once
and persisted under ``DATA_DIR`` so every Gunicorn worker and every restart share it.
"""

from __future__ import annotations

import hashlib
import math
import os
import secrets
import socket
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from app.core.face_settings import FaceSettings
from app.core.mail_settings import MailSettings
from app.core.server_config import ServerSettings as ServerSettings
from app.core.server_config import get_server_settings as get_server_settings

PROJECT_DIR = Path(__file__).resolve().parents[2]
# Largest image accepted (width x height): MAX_IMAGE_PIXELS, and the image functions' default.
DEFAULT_MAX_IMAGE_PIXELS = 50_000_000
_KNOWN_BAD_SECRETS = {"", "changeme", "change-me", "secret", "dev", "development"}


def _weak_secret(secret: str) -> bool:
    """Too short, a known placeholder, a repeated pattern, or too few distinct characters for
    about 100 bits (32 hex digits pass)."""
    distinct = len(set(secret))
    bits = len(secret) * math.log2(distinct) if distinct > 1 else 0.0
    repeated = secret in (secret + secret)[1:-1]
    short = len(secret) < 32
    return secret.strip().lower() in _KNOWN_BAD_SECRETS or short or repeated or distinct < 8 or bits < 96


def sqlalchemy_url(url: str) -> str:
    """A database URL as SQLAlchemy needs it: Heroku-style ``postgres://`` and a plain
    ``postgresql://`` both mean our driver, psycopg2 (SQLAlchemy 2.1 would otherwise pick
    psycopg 3, which we do not ship)."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix) :]
    return url


class Settings(FaceSettings, MailSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    environment: Literal["development", "production", "test"] = "development"
    data_dir: Path = PROJECT_DIR / "data"

    database_url: str = ""  # empty: a SQLite file under data_dir
    db_pool_size: int = Field(default=5, ge=1, le=200)
    db_max_overflow: int = Field(default=5, ge=0, le=500)
    # How long a request waits for a pooled connection before 503 db_pool_exhausted: a queue,
    # not a refusal (a request holds its connection only while it queries).
    db_pool_timeout: float = Field(default=10.0, gt=0, le=60)
    db_connect_timeout: int = Field(default=3, ge=1, le=60)
    sqlite_busy_timeout_ms: int = Field(default=15_000, ge=0)
    # DATABASE_URL points at PgBouncer in transaction pooling mode: the start-up budget check
    # counts connections to the pooler, not to PostgreSQL, and LISTEN (which a transaction
    # pooler cannot carry) goes to DATABASE_LISTEN_URL, a direct URL; without it, idle face
    # workers poll every JOB_IDLE_POLL_SECONDS.
    database_pooler: Literal["none", "pgbouncer"] = "none"
    database_listen_url: str = ""

    secret_key: str = ""
    access_token_expire_minutes: int = Field(default=60 * 24 * 7, ge=1)
    jwt_algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"

    # OWASP Password Storage Cheat Sheet: argon2id, m=19 MiB, t=2, p=1.
    argon2_time_cost: int = Field(default=2, ge=1)
    argon2_memory_cost: int = Field(default=19_456, ge=8)  # KiB
    argon2_parallelism: int = Field(default=1, ge=1)
    # Password hashes run in threads this much nicer than the rest of the request work.
    password_hash_nice: int = Field(default=10, ge=0, le=19)

    max_json_body_bytes: int = Field(default=64 * 1024, ge=1024)
    # Requests served at once by one web worker; beyond it an immediate 503.
    max_in_flight: int = Field(default=100, ge=1)
    # Slow clients: the headers must arrive within this many seconds, and the body within it
    # plus one second per REQUEST_MIN_RATE bytes received (Apache mod_reqtimeout's rule); then 408.
    request_read_timeout: float = Field(default=15.0, gt=0, le=600)
    request_min_rate: int = Field(default=500, ge=1)
    # Uploads also average UPLOAD_MIN_RATE bytes/s after that grace, and end within these seconds.
    upload_min_rate: int = Field(default=4096, ge=1)
    selfie_upload_max_seconds: float = Field(default=120.0, gt=0, le=3600)
    photo_upload_max_seconds: float = Field(default=1800.0, gt=0, le=86400)
    # Uploads one web worker receives at once, and one guest / organizer sends (503 / 429 beyond).
    selfie_uploads_per_worker: int = Field(default=64, ge=1)
    selfie_uploads_per_guest: int = Field(default=2, ge=1)
    photo_uploads_per_worker: int = Field(default=12, ge=1)
    photo_uploads_per_organizer: int = Field(default=6, ge=1)
    # /api/stats, /api/db-raw-test and /metrics require it; when unset, one is generated at
    # first start and kept in DATA_DIR/ops_token (0600).
    ops_token: str = ""

    # Storage of photos and selfies: empty for files under DATA_DIR/media, or
    # s3://bucket/prefix for an S3-compatible bucket (every node of a deployment shares it).
    storage_url: str = Field(default="", pattern=r"^(s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?)?$")
    s3_endpoint_url: str = ""  # empty: AWS; else e.g. http://127.0.0.1:8333 (SeaweedFS, MinIO)
    aws_access_key_id: str = ""  # empty: boto3's own chain (environment, profile, instance role)
    aws_secret_access_key: str = ""
    aws_region: str = "us-east-1"
    s3_timeout: float = Field(default=10.0, gt=0, le=120)  # seconds, connect and per read
    # Photos are served by redirecting to a short-lived presigned URL of the bucket; false when
    # clients cannot reach the bucket: the nodes then stream the files themselves.
    storage_presigned_urls: bool = True
    storage_url_expire_seconds: int = Field(default=300, ge=10, le=7 * 24 * 3600)
    # This node's own runtime files (metrics of its processes, wake-up sockets, Gunicorn's
    # control socket); never shared. Empty: a folder in memory (``node_dir``), off the data disk.
    run_dir: Path | None = None
    # Uploads are refused (507 storage_full) while the media disk has less free space than the
    # larger of these: the database, on the same disk, keeps room for the deletions that free it.
    storage_min_free_bytes: int = Field(default=512 * 1024 * 1024, ge=0)
    storage_min_free_percent: float = Field(default=0.0, ge=0, le=50)
    # The health check's write probe: a write that cannot start within this is reported locked.
    health_write_timeout: float = Field(default=2.0, gt=0, le=30)
    # This node's name in job leases, wake-up sockets and logs (default: the host name).
    node_name: str = Field(default_factory=socket.gethostname, min_length=1, max_length=64)

    # Throttles (app.core.throttle): counts in Redis when set (shared by all workers and
    # servers), else in each process's memory. Limits are "N/period" strings of `limits`.
    redis_url: str = ""
    redis_key_prefix: str = Field(default="event-photos", min_length=1, max_length=64)
    # Each call to Redis gives up after this many seconds; after a failure the throttles count
    # per process and try Redis again once per REDIS_RETRY_SECONDS.
    redis_timeout: float = Field(default=0.1, gt=0, le=5)
    redis_retry_seconds: float = Field(default=5.0, gt=0, le=600)
    throttles_enabled: bool = True
    # Wrong event codes per client address (an enumeration of codes).
    throttle_code_failures_per_address: str = "60/10 minutes"
    # Wrong passwords: per account and address, per account from anywhere, per address.
    throttle_login_failures_per_account_address: str = "10/5 minutes"
    throttle_login_failures_per_account: str = "50/hour"
    throttle_login_failures_per_address: str = "100/10 minutes"
    # Wrong passwords from a browser holding a device cookie of the account (trusted device).
    throttle_login_failures_per_device: str = "10/hour"
    # Zip exports (GET /api/me/export, /api/my-photos/download) started per guest.
    throttle_exports_per_guest: str = "6/hour"
    # Username/email availability checks per client address (they reveal which exist).
    throttle_availability_per_address: str = "1000/10 minutes"
    # Selfie uploads per guest.
    throttle_selfies_per_guest: str = "20/hour"

    # Password resets and sign-in links asked per client address (429 beyond: the same for
    # every address asked about), and mails of those kinds sent to one account (beyond: the
    # request is answered the same and nothing is sent, so a mailbox cannot be flooded).
    throttle_mail_requests_per_address: str = "20/10 minutes"
    throttle_mails_per_account: str = "5/hour"
    # Reset and sign-in mails sent by the whole service (an attack from many places on many
    # accounts): past it nothing more is sent until the window moves, and it is logged.
    throttle_link_mails_total: str = "1000/hour"

    selfie_validation_strict: bool = True
    # Keep a selfie's image once its face template is stored (false: it is deleted then).
    selfie_keep_image: bool = False
    # Selfie changes (an accepted replacement, or a deletion) per guest in 24 hours; shown to organizers.
    selfie_changes_per_day: int = Field(default=3, ge=0, le=1000)
    # Days after an event's end (or, without an end, its last upload) when its photos, faces
    # and matches are purged (per event).
    event_retention_days: int = Field(default=30, ge=1, le=3650)
    # Who answers for the guests' data, and how to reach them: named in the privacy policy
    # (/privacy, GET /api/privacy). Empty: the policy says the operator has not named them.
    privacy_controller: str = Field(default="", max_length=300)
    privacy_contact: str = Field(default="", max_length=300)
    # Photos erased per committed step of an event purge.
    purge_batch_size: int = Field(default=100, ge=1, le=10_000)
    selfie_max_bytes: int = Field(default=15 * 1024 * 1024, ge=1024)
    photo_max_bytes: int = Field(default=40 * 1024 * 1024, ge=1024)
    photo_upload_max_bytes: int = Field(default=512 * 1024 * 1024, ge=1024)
    photo_upload_max_files: int = Field(default=500, ge=1)
    max_image_pixels: int = Field(default=DEFAULT_MAX_IMAGE_PIXELS, ge=10_000)
    # A selfie's own, lower limit: a phone's front camera takes under 20 MP.
    selfie_max_pixels: int = Field(default=24_000_000, ge=10_000)
    # A selfie decoded in full (PNG, WebP, HEIC; a JPEG is decoded reduced): at most this many pixels.
    selfie_max_decode_pixels: int = Field(default=12_600_000, ge=10_000)
    # The most memory one image may take to decode (estimated from its size and mode before
    # any pixel is decoded); a face worker holds one image at a time.
    image_decode_max_mb: int = Field(default=768, ge=16)
    thumbnail_size: int = Field(default=480, ge=64, le=2048)
    # How long one Server-Sent Events response lasts (GET /api/selfie/events); browsers reconnect.
    selfie_events_max_seconds: float = Field(default=300.0, gt=0, le=3600)
    selfie_events_per_guest: int = Field(default=5, ge=1)  # streams open at once, per web worker
    photo_cache_seconds: int = Field(default=300, ge=0, le=86400)  # a served photo's browser cache
    # How often one web worker reads the state of the selfies its clients wait on (one query
    # for all of them).
    selfie_watch_interval: float = Field(default=0.1, gt=0, le=5)

    # Background face workers
    face_workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1, le=64)
    embedded_face_workers: bool = True
    # CPU priority offset of face workers: the web workers answer first on a busy machine.
    face_worker_nice: int = Field(default=15, ge=0, le=19)
    job_lease_seconds: float = Field(default=60.0, gt=0)
    job_max_attempts: int = Field(default=3, ge=1)
    # An idle face worker sleeps until woken (PostgreSQL LISTEN/NOTIFY, or a local socket on
    # SQLite) or this many seconds pass (delayed retries, expired leases, other machines).
    job_idle_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    worker_chaos_pause_seconds: float = Field(default=0.0, ge=0)  # fault-injection tests only
    worker_chaos_step_seconds: float = Field(default=0.0, ge=0)  # a pause between committed steps

    @model_validator(mode="after")
    def _limits_parse(self) -> Settings:
        from limits import parse

        for name, value in self.model_dump().items():
            if name.startswith("throttle_") and isinstance(value, str):
                try:
                    parse(value)
                except ValueError:
                    raise ValueError(
                        f"{name.upper()}={value!r} is not a limit such as '10/5 minutes'"
                    ) from None
        return self

    @model_validator(mode="after")
    def _require_a_strong_secret(self) -> Settings:
        # Production needs one; a key given in any environment must be a real one (``dev`` or
        # 32 times the same letter sign tokens anyone can forge). Unset in development: a
        # random key is generated once under DATA_DIR.
        if (self.environment == "production" or self.secret_key) and _weak_secret(self.secret_key):
            raise ValueError(
                "SECRET_KEY must be a random value of at least 32 characters (not a word, not a "
                "repeated pattern), and is required when ENVIRONMENT=production: e.g. "
                "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`."
            )
        return self

    @model_validator(mode="after")
    def _require_shared_secret_with_shared_storage(self) -> Settings:
        # With a bucket, nodes share no disk: a key generated into one node's DATA_DIR would
        # make the tokens of one node worthless on the next.
        if self.storage_is_s3 and not self.secret_key and self.environment != "test":
            raise ValueError(
                "STORAGE_URL=s3://... is for several nodes, which must share one SECRET_KEY: set it "
                "(the same random value of at least 32 characters on every node)."
            )
        return self

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return sqlalchemy_url(self.database_url)
        return f"sqlite:///{self.data_dir / 'app.db'}"

    @property
    def media_dir(self) -> Path:
        return self.data_dir / "media"

    @property
    def node_dir(self) -> Path:
        """This node's own runtime files (RUN_DIR); never shared between machines. By default a
        folder of this user, node and DATA_DIR in memory (/dev/shm, else $XDG_RUNTIME_DIR), else
        in the system's temporary directory: never on the data disk, whose filling up would
        kill every new worker that maps its metrics file there."""
        if self.run_dir:
            return self.run_dir
        tag = hashlib.sha256(f"{self.node_name}\0{self.data_dir.resolve()}".encode()).hexdigest()[:12]
        return _runtime_base() / f"event-photos-{os.getuid()}-{tag}"

    @property
    def storage_is_s3(self) -> bool:
        return self.storage_url.startswith("s3://")

    @property
    def listen_url(self) -> str | None:
        """Where face workers LISTEN for new jobs (PostgreSQL), or None to poll."""
        if self.database_pooler == "pgbouncer":
            return sqlalchemy_url(self.database_listen_url) if self.database_listen_url else None
        return self.sqlalchemy_url

    @property
    def is_sqlite(self) -> bool:
        return self.sqlalchemy_url.startswith("sqlite")

    def signing_key(self) -> str:
        """The JWT signing key: SECRET_KEY, or a generated one persisted under DATA_DIR."""
        if self.secret_key:
            return self.secret_key
        return _persisted_secret(self.data_dir / "secret_key")

    @property
    def ops_token_file(self) -> Path:
        return self.data_dir / "ops_token"

    def ops_key(self) -> str:
        """The operations token: OPS_TOKEN, or a generated one persisted under DATA_DIR (0600)."""
        if self.ops_token:
            return self.ops_token
        return _persisted_secret(self.ops_token_file, size=32)


def _runtime_base() -> Path:
    for base in ("/dev/shm", os.environ.get("XDG_RUNTIME_DIR", "")):  # noqa: S108 - checked below
        if base and os.path.isdir(base) and os.access(base, os.W_OK | os.X_OK):
            return Path(base)
    return Path(tempfile.gettempdir())


def _persisted_secret(path: Path, size: int = 48) -> str:
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    # Created 0600: the secret is never readable by others, not even for an instant.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_urlsafe(size))
    try:
        # link() fails if another worker won the race: everyone then reads the winner's key.
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_text().strip()


@lru_cache
def get_settings() -> Settings:
    return Settings()
