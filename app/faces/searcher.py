"""The node's gallery searcher: one process of the face-worker pool searches the event
galleries for every face worker of the node.

A worker that searched its own galleries (``app.faces.galleries``) would hold, beside its face
models and the buffers of the photo it is detecting: the pages of the segments it touched
(the page cache shares them, but each worker's resident memory counts them: about 370 MB at a
marathon's 1.5 million faces), the faces after the last segment (up to 100 MB of float32) and
usearch's tables for the segments. The pool starts this searcher (``serve``) instead; workers
ask it for candidates over a Unix socket in the node's run folder (``candidates``) and re-rank
them exactly as before, in their own transaction; a worker that purges an event tells it to
let the event's segments go (``forget``). A worker that cannot reach it (not started
yet, restarting, switched off with ``FACE_SEARCHER=false``, no answer within
``FACE_SEARCHER_TIMEOUT_SECONDS``) searches in its own memory, as a single process would:
bigger and colder, never different.

The socket's name is drawn from what decides an answer (database, gallery folder, segment
size), so a process configured otherwise never asks a searcher that is not its own; the
connection is authenticated with a key derived from the signing key. Messages are bytes, never
pickles: a request is a JSON header, a newline and the probe's float32 values; an answer is
one status byte and the candidate ids (int64) or an error text.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Connection, Listener
from pathlib import Path

import numpy as np

from app.core.config import Settings, get_settings
from app.core.database import session_scope

log = logging.getLogger("app.faces.searcher")

_OK, _FAILED = b"\x00", b"\x01"
_MAX_REQUEST = 64 * 1024


def address(settings: Settings) -> Path:
    """The searcher's socket for these settings."""
    decides = "\0".join(
        (
            settings.sqlalchemy_url,
            str(settings.galleries_dir.resolve()),
            str(settings.face_index_segment_faces),
        )
    )
    return settings.node_dir / f"search-{hashlib.sha256(decides.encode()).hexdigest()[:16]}.sock"


def _authkey(settings: Settings) -> bytes:
    return hmac.new(settings.signing_key().encode(), b"node gallery searcher", hashlib.sha256).digest()


# --- the searcher --------------------------------------------------------------------------------

_locks: dict[tuple[int, str], threading.Lock] = {}
_locks_guard = threading.Lock()


@contextmanager
def _gallery_lock(event_id: int, model: str) -> Iterator[None]:
    """One lookup of a gallery at a time (it may catch up or write segments); other events'
    lookups go on meanwhile."""
    with _locks_guard:
        lock = _locks.setdefault((event_id, model), threading.Lock())
    with lock:
        yield


#: ``lookup(session=, event_id=, model=, probe=, radius=)``: candidate ids from this process's
#: own galleries (``faces.search.local_candidates``).
Lookup = Callable[..., np.ndarray]


def _answer(conn: Connection, lookup: Lookup, forget: Callable[[int], None]) -> None:
    """Answer one worker's lookups (and ``forget`` an event's galleries when asked) until it
    goes."""
    with conn:
        while True:
            try:
                header, _, probe = conn.recv_bytes(_MAX_REQUEST).partition(b"\n")
            except (EOFError, OSError):
                return
            try:
                asked = json.loads(header)
                if "forget" in asked:
                    forget(int(asked["forget"]))
                    conn.send_bytes(_OK)
                    continue
                event_id, model = int(asked["event_id"]), str(asked["model"])
                with _gallery_lock(event_id, model), session_scope() as session:
                    ids = lookup(
                        session=session,
                        event_id=event_id,
                        model=model,
                        probe=np.frombuffer(probe, dtype="<f4").astype(np.float32),
                        radius=float(asked["radius"]),
                    )
                reply = _OK + np.asarray(ids, dtype="<i8").tobytes()
            except Exception as exc:  # this lookup fails; the worker searches itself
                log.exception("lookup failed")
                reply = _FAILED + str(exc).encode()[:1000]
            try:
                conn.send_bytes(reply)
            except OSError:
                return


def serve(*, lookup: Lookup, forget: Callable[[int], None], settings: Settings | None = None) -> None:
    """Accept the node's workers and answer each in a thread, until the process is stopped;
    ``forget(event_id)`` lets an event's galleries go (it was purged or deleted)."""
    settings = settings or get_settings()
    path = address(settings)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.unlink(missing_ok=True)
    with Listener(str(path), family="AF_UNIX", authkey=_authkey(settings)) as listener:
        log.info("gallery searcher ready on %s", path)
        while True:
            try:
                conn = listener.accept()
            except (OSError, EOFError, AuthenticationError):  # failed the handshake, or went
                log.warning("a connection to the gallery searcher was refused", exc_info=True)
                continue
            threading.Thread(
                target=_answer, args=(conn, lookup, forget), daemon=True, name="searcher-client"
            ).start()


# --- a worker's side -----------------------------------------------------------------------------


class _Link:
    """This process's connection to the node's searcher, made at its first use and again
    after a failure; one question at a time (a worker's jobs run in one thread, but a test
    process may ask from several)."""

    def __init__(self) -> None:
        self.conn: Connection | None = None
        self.to: tuple[Path, bytes] | None = None
        self.warned = False
        self.lock = threading.Lock()

    def ask(self, settings: Settings, request: bytes) -> bytes:
        with self.lock:
            try:
                return self._ask(settings, request)
            except BaseException:  # a half-read answer must not be read as the next one's
                self.close()
                raise

    def _ask(self, settings: Settings, request: bytes) -> bytes:
        to = (address(settings), _authkey(settings))
        if self.conn is None or self.to != to:
            self.close()
            self.conn = Client(str(to[0]), family="AF_UNIX", authkey=to[1])
            self.to = to
        self.conn.send_bytes(request)
        if not self.conn.poll(settings.face_searcher_timeout_seconds):
            raise TimeoutError(f"no answer within {settings.face_searcher_timeout_seconds} s")
        return self.conn.recv_bytes()

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn = None


_link = _Link()


def candidates(*, event_id: int, model: str, probe: np.ndarray, radius: float) -> np.ndarray | None:
    """Candidate face ids from the node's searcher; None when it cannot answer (the caller
    then searches in its own memory)."""
    settings = get_settings()
    if not settings.face_searcher:
        return None
    header = json.dumps({"event_id": event_id, "model": model, "radius": radius}).encode()
    request = header + b"\n" + np.asarray(probe, dtype="<f4").tobytes()
    try:
        reply = _link.ask(settings, request)
    except (OSError, EOFError, TimeoutError, AuthenticationError) as exc:
        # No socket, or a stale one: no searcher runs (a worker outside the pool, tests).
        quiet = isinstance(exc, FileNotFoundError | ConnectionRefusedError)
        if not quiet and not _link.warned:  # once until it answers again
            log.warning("the node's gallery searcher did not answer (%s); searching here", exc)
            _link.warned = True
        return None
    _link.warned = False
    if reply[:1] != _OK:
        log.warning(
            "the node's gallery searcher failed a lookup (%s); searching here",
            reply[1:].decode(errors="replace"),
        )
        return None
    return np.frombuffer(reply, dtype="<i8", offset=1).astype(np.int64)


def forget(*, event_id: int) -> None:
    """Have the node's searcher let the event's galleries go now (its segments are being
    deleted): best effort, as the searcher lets an unused gallery go within the hour anyway."""
    settings = get_settings()
    if settings.face_searcher:
        with contextlib.suppress(OSError, EOFError, TimeoutError, AuthenticationError):
            _link.ask(settings, json.dumps({"forget": event_id}).encode() + b"\n")
