"""Gallery-aware matching on real photos: the labelled devset (``tests/fixtures/devset``) with the
default settings, and, through the API and the real face jobs, a hard photo found through an
easy one uploaded later, and taken back out with "not me"."""

from __future__ import annotations

import io
from typing import Any

from fastapi.testclient import TestClient
from PIL import Image, ImageEnhance

from app.core.config import get_settings
from app.faces.providers import get_face_provider, match_settings
from app.faces.providers.local import LocalProvider
from tests.helpers import drain_jobs, selfie_verdict, upload_photos
from tools.match_scoring import LabelledSet, Photo, index, load_devset, score, selfie_probes
from tools.paths import DEVSET
from tools.photos import fixture_bytes


def default_engine() -> tuple[LocalProvider, float, float, float]:
    provider = get_face_provider()
    assert isinstance(provider, LocalProvider)
    distances = match_settings(get_settings())
    return provider, distances.threshold, distances.expand, distances.guard


def test_the_devset_is_matched_with_precision_and_recall_one_with_the_defaults() -> None:
    provider, threshold, expand, guard = default_engine()
    devset = load_devset(DEVSET)
    indexed = index(provider.engine, devset)
    probes = selfie_probes(provider.engine, devset)
    total, per_guest = score(indexed, probes, threshold, expand, guard)
    assert (total.precision, total.recall) == (1.0, 1.0), per_guest
    assert total.tp == 15


def test_a_crowded_group_of_strangers_joins_no_guest_through_the_expansion() -> None:
    """t1.jpg: six people who are none of the guests, added to the devset's event; every guest's
    selfie is expanded with the defaults and none of the six is matched to anyone."""
    provider, threshold, expand, guard = default_engine()
    engine = provider.engine
    devset = load_devset(DEVSET)
    crowd = Photo("t1.jpg", ["stranger"] * 6, fixture_bytes("t1.jpg"))
    event = LabelledSet("devset and a crowd", devset.selfies, [*devset.photos, crowd])
    indexed = index(engine, event)
    assert indexed.faces_found[len(event.photos)] == 6
    probes = selfie_probes(engine, event)
    total, per_guest = score(indexed, probes, threshold, expand, guard)
    assert (total.precision, total.recall) == (1.0, 1.0), per_guest
    crowd_id = len(event.photos)
    for person, probe in probes.items():
        matched = indexed.gallery.match(probe, threshold=threshold, expand=expand, guard=guard)
        assert crowd_id not in {photo for _face, photo, _d in matched}, person


def _hard_photo() -> bytes:
    """alex_lacamoire_2.png at half size, dimmed to 40 % and saved at JPEG quality 30: about
    1.09 from the alex_lacamoire_1.jpg selfie (beyond the threshold, within the guard) and
    0.98 from the average of that selfie and alex_lacamoire_3.jpg (docs/FACES.md)."""
    img = Image.open(DEVSET / "alex_lacamoire_2.png").convert("RGB")
    half = img.resize((img.width // 2, img.height // 2), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    ImageEnhance.Brightness(half).enhance(0.4).save(out, "JPEG", quality=30)
    return out.getvalue()


def _mine(client: TestClient, headers: dict[str, str], ids: dict[str, int]) -> set[str]:
    names = {v: k for k, v in ids.items()}
    return {names[p["id"]] for p in client.get("/api/my-photos", headers=headers).json()["photos"]}


def test_a_photo_indexed_later_brings_in_an_earlier_harder_one_and_not_me_takes_both_back(
    client: TestClient, org_headers: dict[str, str], event: dict[str, Any], guest_headers: dict[str, str]
) -> None:
    photo = (DEVSET / "alex_lacamoire_1.jpg").read_bytes()
    assert selfie_verdict(client, guest_headers, photo)["status"] == "ready"
    ids = upload_photos(client, org_headers, event["id"], {"hard.png": _hard_photo()})
    drain_jobs()
    assert _mine(client, guest_headers, ids) == set()  # beyond the threshold from the selfie: no match alone

    ids |= upload_photos(
        client, org_headers, event["id"], {"easy.jpg": (DEVSET / "alex_lacamoire_3.jpg").read_bytes()}
    )
    drain_jobs()
    assert _mine(client, guest_headers, ids) == {"easy.jpg", "hard.png"}

    # "Not me" on the easy photo: it goes, and the hard one that joined through it goes too.
    assert client.post(f"/api/my-photos/{ids['easy.jpg']}/not-me", headers=guest_headers).status_code == 204
    drain_jobs()
    assert _mine(client, guest_headers, ids) == set()
    ids |= upload_photos(
        client, org_headers, event["id"], {"other.jpg": (DEVSET / "obama_4.jpg").read_bytes()}
    )
    drain_jobs()
    assert _mine(client, guest_headers, ids) == set()  # new photos do not bring it back

    assert client.delete(f"/api/my-photos/{ids['easy.jpg']}/not-me", headers=guest_headers).status_code == 204
    drain_jobs()
    assert _mine(client, guest_headers, ids) == {"easy.jpg", "hard.png"}
