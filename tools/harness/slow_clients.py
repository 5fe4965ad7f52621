"""Clients that send their request slowly, over raw sockets: what the server's read timeout
must cut off without letting them hold the slots of other clients."""

from __future__ import annotations

import socket
import threading
import time


def connect(base: str) -> socket.socket:
    """A TCP connection to the server at ``base`` (``http://host:port``)."""
    host, port = base.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=60)


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while chunk := sock.recv(4096):
        chunks.append(chunk)
    return b"".join(chunks)


class Trickle:
    """``n`` connections that send their headers and then one byte of body every ``every`` s."""

    def __init__(self, base: str, n: int, every: float) -> None:
        self.socks = [connect(base) for _ in range(n)]
        self.every = every
        self.answers: list[bytes] = [b""] * n
        self.closed_after: list[float] = [0.0] * n
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(n)]

    def _run(self, i: int) -> None:
        sock, start = self.socks[i], time.monotonic()
        sock.sendall(
            b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n{"
        )
        sock.settimeout(self.every)
        answer = b""
        while True:
            try:
                chunk = sock.recv(4096)
            except TimeoutError:
                try:
                    sock.sendall(b" ")
                except OSError:
                    break
                continue
            except OSError:
                break
            if not chunk:
                break
            answer += chunk
        self.answers[i] = answer
        self.closed_after[i] = time.monotonic() - start

    def __enter__(self) -> Trickle:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for t in self._threads:
            t.join(timeout=120)
        for s in self.socks:
            s.close()
