"""The fake Azure Face served over real HTTP on 127.0.0.1: its routes (Azure's paths and
verbs), and starting and stopping it on the same port."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn
from starlette.applications import Starlette
from starlette.routing import Route

from tests.fakes.azure_face.lists import FakeLargeFaceLists
from tests.fakes.azure_face.state import BASE


class FakeAzureFace(FakeLargeFaceLists):
    """The fake service; see the package docstring. ``start()`` before use, ``stop()`` after."""

    def __init__(self, *, key: str = "fake-face-key", train_seconds: float = 0.05) -> None:
        super().__init__(key=key, train_seconds=train_seconds)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.app = Starlette(
            routes=[
                Route(f"{BASE}/detect", self._detect, methods=["POST"]),
                Route(f"{BASE}/largefacelists/{{list_id}}", self._list, methods=["PUT", "GET", "DELETE"]),
                Route(f"{BASE}/largefacelists/{{list_id}}/persistedfaces", self._add_face, methods=["POST"]),
                Route(
                    f"{BASE}/largefacelists/{{list_id}}/persistedfaces/{{face_id}}",
                    self._delete_face,
                    methods=["DELETE"],
                ),
                Route(f"{BASE}/largefacelists/{{list_id}}/train", self._train, methods=["POST"]),
                Route(f"{BASE}/largefacelists/{{list_id}}/training", self._training, methods=["GET"]),
                Route(f"{BASE}/findsimilars", self._find_similar, methods=["POST"]),
            ]
        )

    # --- lifecycle --------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> FakeAzureFace:
        """Serve (again) on the same port as before, or on a free one the first time."""
        if self._server is not None:
            return self
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            http="h11",
            loop="asyncio",
            timeout_graceful_shutdown=1,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fake Azure Face server did not start")
            time.sleep(0.01)
        self._server, self._thread = server, thread  # uvicorn closes the socket on shutdown
        return self

    def stop(self) -> None:
        """Take the server down (connections are refused until ``start()``); state is kept."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(timeout=10)
