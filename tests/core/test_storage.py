"""The storage interface behaves the same on local files and on a real S3-compatible server
(SeaweedFS): every test here runs on both."""

from __future__ import annotations

import hashlib
import io
import os
from datetime import timedelta
from tempfile import SpooledTemporaryFile

import httpx
import pytest
from sqlalchemy import text

from app.core import storage
from app.core.database import get_sessionmaker


def test_a_saved_file_reads_back_whole_in_chunks_and_with_its_size(storage_kind: str) -> None:
    storage.save("photos/1/a.jpg", b"first")
    storage.save("photos/1/a.jpg", b"second version")  # replaced whole
    assert storage.load("photos/1/a.jpg") == b"second version"
    assert b"".join(storage.chunks("photos/1/a.jpg")) == b"second version"
    assert storage.size("photos/1/a.jpg") == len(b"second version")


def test_a_large_upload_is_streamed_from_a_file_and_arrives_intact(storage_kind: str) -> None:
    data = os.urandom(9 * 1024 * 1024 + 17)  # over the 8 MiB multipart threshold of S3
    with SpooledTemporaryFile(1024 * 1024) as spooled:
        spooled.write(data)
        spooled.seek(0)
        storage.save("photos/1/big.jpg", spooled)
    assert storage.size("photos/1/big.jpg") == len(data)
    digest = hashlib.sha256()
    for chunk in storage.chunks("photos/1/big.jpg"):
        assert len(chunk) <= storage.CHUNK_BYTES
        digest.update(chunk)
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()


def test_a_missing_file_is_file_not_found_and_deleting_it_is_no_error(storage_kind: str) -> None:
    with pytest.raises(FileNotFoundError):
        storage.load("photos/1/none.jpg")
    with pytest.raises(FileNotFoundError):
        b"".join(storage.chunks("photos/1/none.jpg"))
    assert storage.size("photos/1/none.jpg") is None
    storage.delete("photos/1/none.jpg")
    storage.delete_all(["photos/1/none.jpg", None])


@pytest.mark.parametrize("key", ["", "/etc/passwd", "../x.jpg", "photos/../../x", "a//b", "a\\b", "a/./b"])
def test_keys_that_could_escape_are_refused(storage_kind: str, key: str) -> None:
    with pytest.raises(ValueError, match="storage key"):
        storage.save(key, b"x")


def test_deleting_a_folder_removes_all_it_holds_and_nothing_beside_it(storage_kind: str) -> None:
    for key in ("photos/1/a.jpg", "photos/1/b.jpg", "thumbs/1/a.jpg", "photos/10/c.jpg", "photos/2/d.jpg"):
        storage.save(key, b"x")
    storage.delete_folders(["photos/1", "thumbs/1"])
    assert [storage.size(k) for k in ("photos/1/a.jpg", "photos/1/b.jpg", "thumbs/1/a.jpg")] == [None] * 3
    assert storage.size("photos/10/c.jpg") == 1 and storage.size("photos/2/d.jpg") == 1


def test_the_sweep_deletes_only_old_files_that_no_row_names(storage_kind: str) -> None:
    storage.save("selfies/1/named.jpg", b"x")
    storage.save("selfies/1/orphan.jpg", b"x")
    assert storage.delete_unnamed({"selfies/1/named.jpg"}, older_than=timedelta(hours=1)) == 0
    assert storage.delete_unnamed({"selfies/1/named.jpg"}, older_than=timedelta(0)) == 1
    assert storage.size("selfies/1/named.jpg") == 1 and storage.size("selfies/1/orphan.jpg") is None


def test_files_follow_the_transaction_of_their_rows(storage_kind: str) -> None:
    storage.save("photos/1/kept.jpg", b"x")
    storage.save("photos/1/unsaved.jpg", b"x")
    storage.save("photos/1/replaced.jpg", b"x")
    with get_sessionmaker()() as session:
        session.execute(text("SELECT 1"))
        storage.delete_if_rolled_back(session, ["photos/1/unsaved.jpg"])
        storage.delete_after_commit(session, ["photos/1/kept.jpg"])
        session.rollback()  # the rows never existed: their new file goes, the old one stays
        session.execute(text("SELECT 1"))
        storage.delete_after_commit(session, ["photos/1/replaced.jpg"])
        session.commit()
    assert storage.size("photos/1/unsaved.jpg") is None
    assert storage.size("photos/1/kept.jpg") == 1
    assert storage.size("photos/1/replaced.jpg") is None


def test_only_a_bucket_gives_presigned_urls_and_they_serve_the_file(storage_kind: str) -> None:
    storage.save("thumbs/1/t.jpg", b"thumbnail bytes")
    url = storage.presigned_url("thumbs/1/t.jpg", media_type="image/jpeg", max_age=60)
    if storage_kind == "local":
        assert url is None and storage.local_path("thumbs/1/t.jpg") is not None
        return
    assert url is not None and storage.local_path("thumbs/1/t.jpg") is None
    r = httpx.get(url)
    assert (r.status_code, r.content, r.headers["content-type"]) == (200, b"thumbnail bytes", "image/jpeg")
    assert r.headers["cache-control"] == "private, max-age=60"
    tampered = url.replace("X-Amz-Signature=", "X-Amz-Signature=0")
    assert httpx.get(tampered).status_code == 403


def test_a_file_object_is_read_from_where_it_stands(storage_kind: str) -> None:
    source = io.BytesIO(b"header|payload")
    source.seek(len(b"header|"))
    storage.save("exports/1/p.bin", source)
    assert storage.load("exports/1/p.bin") == b"payload"
