"""A guest downloads everything kept about them, and all their photos, as streamed zips."""

from __future__ import annotations

import io
import json
import zipfile

from PIL import Image

from tests.fixtures.events import Party
from tests.helpers import drain_jobs


def test_the_export_holds_the_guests_data_and_the_photos_they_are_in(party: Party) -> None:
    c = party.client
    c.post(f"/api/my-photos/{party.photos['a.jpg']}/not-me", headers=party.a)
    drain_jobs()  # "not me" recomputes the guest's matches in the background
    r = c.get("/api/me/export", headers=party.a)
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    assert int(r.headers["content-length"]) == len(r.content)
    archive = zipfile.ZipFile(io.BytesIO(r.content))
    names = archive.namelist()
    me = json.loads(archive.read("me.json"))
    assert me["account"]["username"] == "guest1" and me["consent"]["policy_version"]
    assert [e["id"] for e in me["events"]] == [party.event["id"]]
    assert me["selfie"]["status"] == "ready" and me["selfie"]["face_template_stored"] is True
    assert me["not_me"] == [party.photos["a.jpg"]]
    assert [p["id"] for p in me["matched_photos"]] == [party.photos["ab.jpg"]]
    # Mail: the address's state, the links mailed (what for, never the token), the messages
    # (no bodies) and what "your photos are here" keeps.
    assert me["account"]["email_verified_at"] is None and me["account"]["language"] == "fr"
    assert [(t["purpose"], t["email"], t["used_at"]) for t in me["mailed_links"]] == [
        ("verify", "guest1@example.com", None)
    ]
    assert [(m["kind"], m["to"], m["status"]) for m in me["mails"]] == [
        ("verify", "guest1@example.com", "done")
    ]
    assert "token" not in json.dumps(me["mailed_links"]) and "/verify-email/" not in json.dumps(me)
    assert me["notifications"] == {"events": [], "photos_told": []} and me["events"][0]["notify"] is True
    photos = [n for n in names if n != "me.json"]
    assert len(photos) == 1 and photos[0].startswith(f"{party.event['id']} Privacy Party/")
    with Image.open(io.BytesIO(archive.read(photos[0]))) as img:
        assert img.size[0] > 100 and not img.getexif().get_ifd(0x8825)  # no GPS


def test_download_all_my_photos_is_the_same_zip_without_me_json(party: Party) -> None:
    c = party.client
    r = c.get("/api/my-photos/download", headers=party.a)
    names = zipfile.ZipFile(io.BytesIO(r.content)).namelist()
    assert "me.json" not in names and len(names) == 2
    other = c.get("/api/my-photos/download", params={"event_id": 999}, headers=party.a)
    assert zipfile.ZipFile(io.BytesIO(other.content)).namelist() == []
    assert c.get("/api/my-photos/download").status_code == 401
