"""The S3 backend of ``app.core.storage``: objects in an S3-compatible bucket (AWS, SeaweedFS,
MinIO, ...) through boto3, under ``STORAGE_URL=s3://bucket/prefix``."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from app.core.config import Settings
from app.core.storage.base import CHUNK_BYTES, Data


class S3Backend:
    """Objects in an S3-compatible bucket under a prefix, through boto3 (one client per
    process: clients are thread-safe but must not cross a fork)."""

    def __init__(self, settings: Settings) -> None:
        parsed = urlsplit(settings.storage_url)
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/")
        self.settings = settings
        self._client: Any = None
        self._pid = 0
        self._lock = threading.Lock()
        self._origin = ""
        where = settings.s3_endpoint_url or "AWS"
        self.description = f"S3 bucket {self.bucket!r} (prefix {self.prefix or '-'!r}) at {where}"

    @property
    def client(self) -> Any:
        if self._client is None or self._pid != os.getpid():
            with self._lock:
                if self._client is None or self._pid != os.getpid():
                    self._client = self._new_client()
                    self._pid = os.getpid()
        return self._client

    def _new_client(self) -> Any:
        import boto3
        from botocore.config import Config

        s = self.settings
        config = Config(
            connect_timeout=s.s3_timeout,
            read_timeout=s.s3_timeout,
            retries={"max_attempts": 3, "mode": "standard"},
            max_pool_connections=32,
            signature_version="s3v4",
            # Path-style addressing: S3-compatible servers rarely have a DNS name per bucket.
            s3={"addressing_style": "path" if s.s3_endpoint_url else "auto"},
            # Newer boto3 adds CRC checksums to every request; not every S3-compatible server
            # accepts them, and TLS plus Content-MD5 on multi-deletes already cover integrity.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        return boto3.session.Session().client(
            "s3",
            endpoint_url=s.s3_endpoint_url or None,
            region_name=s.aws_region,
            aws_access_key_id=s.aws_access_key_id or None,
            aws_secret_access_key=s.aws_secret_access_key or None,
            config=config,
        )

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _missing(self, exc: Exception) -> bool:
        response = getattr(exc, "response", None) or {}
        code = str(response.get("Error", {}).get("Code", ""))
        return code in ("404", "NoSuchKey", "NotFound")

    def save(self, key: str, data: Data) -> None:
        from boto3.s3.transfer import TransferConfig

        if isinstance(data, bytes):
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
            return
        # Multipart above 8 MiB: the file is sent in parts as it is read, never held whole.
        self.client.upload_fileobj(
            data,
            self.bucket,
            self._key(key),
            Config=TransferConfig(multipart_threshold=8 * CHUNK_BYTES, max_concurrency=4),
        )

    def _get(self, key: str) -> Any:
        from botocore.exceptions import ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        except ClientError as exc:
            if self._missing(exc):
                raise FileNotFoundError(key) from None
            raise

    def load(self, key: str) -> bytes:
        body = self._get(key)
        try:
            return bytes(body.read())
        finally:
            body.close()

    def chunks(self, key: str) -> Iterator[bytes]:
        body = self._get(key)
        try:
            yield from body.iter_chunks(CHUNK_BYTES)
        finally:
            body.close()

    def size(self, key: str) -> int | None:
        from botocore.exceptions import ClientError

        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=self._key(key))["ContentLength"])
        except ClientError as exc:
            if self._missing(exc):
                return None
            raise

    def _delete_objects(self, full_keys: Sequence[str]) -> None:
        for start in range(0, len(full_keys), 1000):  # the API's limit per request
            batch = full_keys[start : start + 1000]
            response = self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True}
            )
            failed = [e for e in response.get("Errors", []) if e.get("Code") != "NoSuchKey"]
            if failed:
                raise OSError(f"the bucket refused to delete {len(failed)} objects: {failed[:3]}")

    def delete_many(self, keys: Sequence[str]) -> None:
        self._delete_objects([self._key(k) for k in keys])

    def _objects(self, prefix: str) -> Iterator[dict[str, Any]]:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            yield from page.get("Contents", [])

    def delete_prefix(self, prefix: str) -> None:
        self._delete_objects([o["Key"] for o in self._objects(self._key(prefix) + "/")])

    def keys_older_than(self, cutoff: datetime) -> Iterator[str]:
        root = f"{self.prefix}/" if self.prefix else ""
        for o in self._objects(root):
            if o["LastModified"] < cutoff:
                yield o["Key"][len(root) :]

    def local_path(self, key: str) -> Path | None:  # noqa: ARG002
        return None

    def presigned_url(self, key: str, *, media_type: str, max_age: int) -> str | None:
        if not self.settings.storage_presigned_urls:
            return None
        params = {
            "Bucket": self.bucket,
            "Key": self._key(key),
            "ResponseContentType": media_type,
            "ResponseCacheControl": f"private, max-age={max_age}",
        }
        url: str = self.client.generate_presigned_url(
            "get_object", Params=params, ExpiresIn=self.settings.storage_url_expire_seconds
        )
        return url

    def check(self) -> None:
        self.client.head_bucket(Bucket=self.bucket)

    def public_origin(self) -> str | None:
        """Where presigned URLs point (scheme://host[:port]), for the pages' CSP; None when
        files are streamed by the nodes."""
        if not self.settings.storage_presigned_urls:
            return None
        if not self._origin:
            url = self.client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": self._key("x")}, ExpiresIn=60
            )
            parts = urlsplit(url)
            self._origin = f"{parts.scheme}://{parts.netloc}"
        return self._origin
