"""Start a real PgBouncer (transaction pooling) in front of a PostgreSQL database.

``running_pgbouncer(database_url)`` yields a ``postgresql://`` URL that goes through a fresh
PgBouncer on 127.0.0.1 (a free port, its ini, auth file, log and pid file in a temporary
directory, removed after). ``server_connections(database_url, database)`` counts, on a direct
connection to PostgreSQL, the backends that PgBouncer processes hold on a database: what a test
compares with ``pool_size`` while many clients are connected through the pooler.

The binary is Debian's ``pgbouncer`` package (``make test`` installs it). PgBouncer refuses to
run as root: as root it is started with its own ``-u postgres`` (the user that the package's
dependency postgresql-common creates), and the temporary directory is handed to that user.

What transaction pooling changes for a client (PgBouncer 1.18, checked by hand): a server
connection is the client's only for the length of a transaction, and nothing resets it in
between. A ``SET`` (even one inside a committed transaction), a temporary table or a ``LISTEN``
stays on that server for whichever client gets it next; only the parameters PgBouncer tracks
(application_name, client_encoding, DateStyle, TimeZone, standard_conforming_strings) are
restored per client. ``LISTEN`` raises no error but its client does not get the notifications:
they go to the client that happens to hold that server, or, when the server is idle, PgBouncer
drops them ("got packet 'A' from server when not linked" in its log). A client that sends the
``options`` startup parameter is refused ("unsupported startup parameter: options").

The yielded URL is the plain ``postgresql://`` form the app accepts as ``DATABASE_URL``; give
it to SQLAlchemy through ``app.core.config.sqlalchemy_url`` (SQLAlchemy 2.1 reads the plain
scheme as psycopg 3, which is not installed).
"""

from __future__ import annotations

import getpass
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import psycopg2
from sqlalchemy.engine import URL, make_url

# Where Debian puts it; shutil.which() misses /usr/sbin when it is not on PATH (non-root shells).
_CANDIDATES = (
    "/usr/sbin/pgbouncer",
    "/usr/bin/pgbouncer",
    "/usr/local/sbin/pgbouncer",
    "/usr/local/bin/pgbouncer",
)
# Who PgBouncer runs as when we are root: postgresql-common (a dependency of Debian's package)
# creates ``postgres``; ``nobody`` is the fallback.
_RUN_AS = ("postgres", "nobody")
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


def pgbouncer_binary() -> str:
    """The path of the pgbouncer executable, or a RuntimeError that says how to get it."""
    found = shutil.which("pgbouncer")
    if found:
        return found
    for candidate in _CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError(
        "pgbouncer is not installed (looked on PATH and in /usr/sbin, /usr/bin, /usr/local): "
        "`make test` installs Debian's pgbouncer package "
        "(apt-get install pgbouncer)"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_as_user() -> pwd.struct_passwd | None:
    """The account PgBouncer switches to (``-u``) when we are root; None when we are not."""
    if os.geteuid() != 0:
        return None
    for name in _RUN_AS:
        with suppress(KeyError):
            return pwd.getpwnam(name)
    raise RuntimeError(f"PgBouncer will not run as root and none of the users {_RUN_AS} exists")


def _direct_dsn(url: URL) -> str:
    """A libpq URL for psycopg2 (which does not know ``postgresql+psycopg2://``)."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def _ini_name(name: str) -> str:
    """A database name as the [databases] section takes it (SQL identifier quoting)."""
    if name and all(c.isalnum() or c == "_" for c in name):
        return name
    return '"' + name.replace('"', '""') + '"'


def _ini_value(value: str) -> str:
    """A value inside a [databases] connect string (libpq quoting)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _quoted(value: str) -> str:
    """A field of the auth file: double quotes, doubled inside."""
    return '"' + value.replace('"', '""') + '"'


def _write_config(
    folder: Path, url: URL, port: int, *, pool_size: int, max_client_conn: int
) -> tuple[Path, str, str]:
    """Write pgbouncer.ini and users.txt in ``folder``; (ini path, user, database)."""
    host = url.host or str(url.query.get("host") or "127.0.0.1")
    server_port = url.port or 5432
    user = url.username or getpass.getuser()
    database = url.database or user
    server = f"host={_ini_value(host)} port={server_port}"
    # trust still needs the user in auth_file; its password is the one PgBouncer logs in to
    # PostgreSQL with (empty for a trust-auth server).
    (folder / "users.txt").write_text(f"{_quoted(user)} {_quoted(url.password or '')}\n")
    ini = folder / "pgbouncer.ini"
    ini.write_text(
        f"""\
[databases]
{_ini_name(database)} = {server} dbname={_ini_value(database)}
; any other database of the same server (scratch databases), in pools of their own
* = {server}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
; no Unix socket: TCP on the loopback address only
unix_socket_dir =
listen_backlog = {max(128, max_client_conn)}
; clients are let in without a password (only this machine can reach the port)
auth_type = trust
auth_file = {folder / "users.txt"}
admin_users = {user}
stats_users = {user}
pool_mode = transaction
default_pool_size = {pool_size}
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = {max_client_conn}
; session pooling only: transaction pooling never resets a server it hands to the next client
server_reset_query = DISCARD ALL
server_reset_query_always = 0
; startup parameters some drivers send that PgBouncer would refuse (psycopg2 sends none);
; "options" (PGOPTIONS) stays refused: ignored, its "-c statement_timeout=..." would be lost
ignore_startup_parameters = extra_float_digits
; a refused server login is retried after 1 s, not 15
server_login_retry = 1
logfile = {folder / "pgbouncer.log"}
pidfile = {folder / "pgbouncer.pid"}
log_connections = 0
log_disconnections = 0
"""
    )
    return ini, user, database


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)  # immediate shutdown (SIGINT would wait for clients)
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT)


def _answers(dsn: str, query: str, *, autocommit: bool = False) -> None:
    conn = psycopg2.connect(dsn, connect_timeout=3)
    try:
        conn.autocommit = autocommit
        with conn.cursor() as cur:
            cur.execute(query)
    finally:
        conn.close()


def _wait_ready(proc: subprocess.Popen[bytes], pooled: URL, deadline: float) -> str | None:
    """None once a query went through PgBouncer; the last error when it exited or time ran out."""
    error = "no answer"
    while True:
        if proc.poll() is not None:
            return f"pgbouncer exited with status {proc.returncode}"
        try:
            # Our PgBouncer's admin console first: something else may hold the port (PgBouncer
            # then exits, "nowhere to listen on") and answer the query below.
            _answers(_direct_dsn(pooled.set(database="pgbouncer")), "SHOW VERSION", autocommit=True)
            _answers(_direct_dsn(pooled), "SELECT 1")
            if proc.poll() is None:
                return None
        except psycopg2.Error as exc:
            error = str(exc).strip()
        if time.monotonic() > deadline:
            return error
        time.sleep(0.1)


@contextmanager
def running_pgbouncer(database_url: str, *, pool_size: int = 10, max_client_conn: int = 500) -> Iterator[str]:
    """Yield a postgresql:// URL that goes through PgBouncer (transaction pooling) to
    database_url's database; PgBouncer is stopped and its directory removed after."""
    binary = pgbouncer_binary()
    url = make_url(database_url)
    try:  # the server's own error at once, rather than PgBouncer's retries until the deadline
        psycopg2.connect(_direct_dsn(url), connect_timeout=10).close()
    except psycopg2.Error as exc:
        raise RuntimeError(f"cannot connect to {url.render_as_string()}: {str(exc).strip()}") from exc
    account = _run_as_user()
    folder = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
    try:
        if account is not None:
            os.chown(folder, account.pw_uid, account.pw_gid)
        for attempt in range(3):  # another process may take the free port before PgBouncer does
            port = _free_port()
            ini, user, database = _write_config(
                folder, url, port, pool_size=pool_size, max_client_conn=max_client_conn
            )
            command = [binary, str(ini)]
            if account is not None:
                for path in folder.iterdir():
                    os.chown(path, account.pw_uid, account.pw_gid)
                command[1:1] = ["-u", account.pw_name]
            output = folder / "pgbouncer.out"
            with output.open("ab") as out:
                proc = subprocess.Popen(  # noqa: S603 - the pgbouncer binary and our ini
                    command, stdin=subprocess.DEVNULL, stdout=out, stderr=out
                )
            pooled = URL.create("postgresql", username=user, host="127.0.0.1", port=port, database=database)
            try:
                error = _wait_ready(proc, pooled, time.monotonic() + START_TIMEOUT)
                if error is None:
                    yield _direct_dsn(pooled)
                    return
                if attempt < 2 and proc.poll() is not None and "in use" in _tail(output):
                    continue
                raise RuntimeError(
                    f"PgBouncer in front of {url.render_as_string()} did not answer "
                    f"(waited up to {START_TIMEOUT:.0f} s): {error}\n--- {output}\n{_tail(output)}"
                )
            finally:
                _stop(proc)
        raise AssertionError("unreachable")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _pgbouncer_server_ports(server_port: int) -> set[int]:
    """Local ports of the TCP connections that pgbouncer processes hold to ``server_port``.

    From /proc: the socket inodes of every process named pgbouncer, matched with the kernel's
    TCP tables. Needs the right to read those processes' fds (root, or PgBouncer's own user).
    """
    inodes: set[str] = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if (proc / "comm").read_text().strip() != "pgbouncer":
                continue
            for fd in (proc / "fd").iterdir():
                with suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        inodes.add(target[len("socket:[") : -1])
        except OSError:  # gone meanwhile, or not ours to read
            continue
    ports: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            local, remote, inode = fields[1], fields[2], fields[9]
            if inode in inodes and int(remote.rsplit(":", 1)[1], 16) == server_port:
                ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


def server_connections(database_url: str, database: str) -> int:
    """How many backends of ``database`` PgBouncer holds, counted on a direct connection.

    PgBouncer's server connections cannot be told apart by application_name (PgBouncer passes
    each client's own on, and it stays on the server after the client leaves) nor by address
    (127.0.0.1, like any direct client). They are told apart by their client port: the ports
    of the TCP connections that pgbouncer processes on this machine hold to the server
    (``/proc``). Every running pgbouncer counts, not only the one a test started; a PgBouncer
    that reaches PostgreSQL over a Unix socket is not seen.
    """
    url = make_url(database_url)
    conn = psycopg2.connect(_direct_dsn(url), connect_timeout=10)
    try:
        conn.autocommit = True  # a fresh pg_stat_activity snapshot
        with conn.cursor() as cur:
            cur.execute(
                "SELECT client_port FROM pg_stat_activity WHERE datname = %s"
                " AND backend_type = 'client backend' AND pid <> pg_backend_pid()",
                (database,),
            )
            ports = [int(row[0]) for row in cur.fetchall() if row[0] is not None]
    finally:
        conn.close()
    # Read after the query: a connection the server saw is in the kernel's tables by then.
    pooler = _pgbouncer_server_ports(url.port or 5432)
    return sum(1 for port in ports if port in pooler)
