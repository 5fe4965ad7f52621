"""Direct uploads to the bucket: presigned PUT and multipart part URLs that a client sends a
file to without its bytes passing through a node, then the checks and the completion.

Only an S3 bucket with presigned URLs (``STORAGE_PRESIGNED_URLS=true``) offers them:
``target()`` is None otherwise (local files, or a bucket the clients must not reach). Keys
are the same relative keys as the rest of ``app.core.storage``. The bucket's CORS must allow
the pages' origin to ``PUT`` and to read the ``ETag`` header (docs/OPERATIONS.md).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from app.core.config import get_settings
from app.core.storage import backend
from app.core.storage.base import CHUNK_BYTES, valid_key
from app.core.storage.s3 import S3Backend

log = logging.getLogger("app.storage")

#: How long a presigned upload URL is valid.
URL_EXPIRE_SECONDS = 3600
#: Files above this size are sent in parts (multipart upload), each ``PART_BYTES`` but the last.
MULTIPART_THRESHOLD = 16 * CHUNK_BYTES
#: The size of each part (S3 wants at least 5 MiB for every part but the last).
PART_BYTES = 8 * CHUNK_BYTES


class UploadFailed(Exception):
    """The bucket refused to complete a multipart upload (unknown upload id, wrong ETags)."""


@dataclass(frozen=True)
class PartUrl:
    number: int
    url: str


@dataclass(frozen=True)
class DirectUpload:
    """Where a client sends one file: a single ``url`` (PUT), or ``parts`` of ``part_bytes``
    each under ``upload_id`` (PUT each, then complete with their ETags)."""

    key: str
    url: str | None = None
    upload_id: str | None = None
    part_bytes: int | None = None
    parts: tuple[PartUrl, ...] = ()


def target() -> S3Backend | None:
    """The bucket clients upload to directly, or None when this storage does not offer it."""
    found = backend()
    if isinstance(found, S3Backend) and get_settings().storage_presigned_urls:
        return found
    return None


def _bucket() -> S3Backend:
    found = target()
    if found is None:
        raise RuntimeError("direct uploads need an S3 bucket with presigned URLs")
    return found


def start(key: str, *, size: int, content_type: str) -> DirectUpload:
    """Presigned URLs for a file of ``size`` bytes sent to ``key`` (multipart when large)."""
    s3 = _bucket()
    full = s3._key(valid_key(key))
    if size <= MULTIPART_THRESHOLD:
        url = s3.client.generate_presigned_url(
            "put_object",
            Params={"Bucket": s3.bucket, "Key": full, "ContentType": content_type},
            ExpiresIn=URL_EXPIRE_SECONDS,
        )
        return DirectUpload(key=key, url=str(url))
    upload_id = str(
        s3.client.create_multipart_upload(Bucket=s3.bucket, Key=full, ContentType=content_type)["UploadId"]
    )
    count = -(-size // PART_BYTES)
    parts = tuple(
        PartUrl(
            number,
            str(
                s3.client.generate_presigned_url(
                    "upload_part",
                    Params={"Bucket": s3.bucket, "Key": full, "UploadId": upload_id, "PartNumber": number},
                    ExpiresIn=URL_EXPIRE_SECONDS,
                )
            ),
        )
        for number in range(1, count + 1)
    )
    return DirectUpload(key=key, upload_id=upload_id, part_bytes=PART_BYTES, parts=parts)


def complete(key: str, *, upload_id: str, etags: Sequence[tuple[int, str]]) -> None:
    """Assemble a multipart upload from its parts' (number, ETag); ``UploadFailed`` when the
    bucket refuses (no such upload, a missing or wrong part)."""
    from botocore.exceptions import ClientError

    s3 = _bucket()
    parts = [{"PartNumber": n, "ETag": etag if etag.startswith('"') else f'"{etag}"'} for n, etag in etags]
    try:
        s3.client.complete_multipart_upload(
            Bucket=s3.bucket,
            Key=s3._key(valid_key(key)),
            UploadId=upload_id,
            MultipartUpload={"Parts": sorted(parts, key=lambda p: int(str(p["PartNumber"])))},
        )
    except ClientError as exc:
        raise UploadFailed(str(exc.response.get("Error", {}).get("Code", "error"))) from None


def stale_multipart_uploads(cutoff: datetime) -> Iterator[tuple[str, str]]:
    """(key, upload id) of the multipart uploads started before ``cutoff`` and never
    completed: their parts take room in the bucket without being objects."""
    s3 = _bucket()
    root = f"{s3.prefix}/" if s3.prefix else ""
    paginator = s3.client.get_paginator("list_multipart_uploads")
    for page in paginator.paginate(Bucket=s3.bucket, Prefix=root):
        for upload in page.get("Uploads", []):
            if upload["Initiated"] < cutoff:
                yield upload["Key"][len(root) :], upload["UploadId"]


def abort_stale_multipart_uploads(cutoff: datetime) -> int:
    """Abort the multipart uploads started before ``cutoff``; how many (0 without a bucket)."""
    s3 = target()
    if s3 is None:
        return 0
    try:
        stale = list(stale_multipart_uploads(cutoff))
        for key, upload_id in stale:
            s3.client.abort_multipart_upload(Bucket=s3.bucket, Key=s3._key(key), UploadId=upload_id)
    except Exception:  # a bucket without the listing: its lifecycle rule does it (OPERATIONS.md)
        log.warning("could not abort the stale multipart uploads", exc_info=True)
        return 0
    return len(stale)
