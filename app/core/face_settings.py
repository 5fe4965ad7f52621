"""The face settings, a part of ``app.core.config.Settings`` (one object; this module keeps
``config`` short): the provider (local engine or Azure Face), the local engine's detector,
recognizer and matching distances, and the galleries of large events. Every variable is
documented in docs/OPERATIONS.md."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings


class FaceSettings(BaseSettings):
    data_dir: Path

    face_provider: Literal["local", "azure"] = "local"
    # Azure Face (FACE_PROVIDER=azure): see the README before enabling (privacy, access).
    azure_face_endpoint: str = ""
    azure_face_key: str = ""
    azure_face_timeout: float = Field(default=10.0, gt=0, le=120)  # seconds, per call
    azure_face_max_retries: int = Field(default=3, ge=0, le=10)
    azure_face_min_quality: Literal["low", "medium", "high"] = "medium"
    azure_face_min_confidence: float = Field(default=0.5, gt=0, lt=1)
    azure_face_circuit_failures: int = Field(default=5, ge=1)  # consecutive failures that open it
    azure_face_circuit_reset_seconds: float = Field(default=30.0, gt=0)
    azure_face_detection_model: str = "detection_03"
    azure_face_recognition_model: str = "recognition_04"
    # Prefix of the face list ids, so deployments sharing one Face resource stay apart.
    azure_face_list_prefix: str = Field(default="", max_length=20, pattern=r"^[a-z0-9_-]*$")
    # The local engine (docs/FACES.md): YuNet finds faces, SFace describes them (the
    # defaults); hog and dlib are dlib's, the fallback that needs only face-recognition-models.
    # SFace needs YuNet's landmarks. Changing the recognizer re-describes every event's faces
    # in the background (a durable job; docs/FACES.md, "Switching the recognizer").
    face_detector: Literal["yunet", "hog"] = "yunet"
    face_recognizer: Literal["sface", "dlib"] = "sface"
    # Event photos are searched for faces down to this size (short side, pixels; YuNet).
    face_photo_min_px: int = Field(default=36, ge=12, le=400)
    # Unset: the recognizer's measured defaults (sface 1.0 / 1.0 / 1.16, dlib 0.5 / 0.55 / 0.6).
    face_match_threshold: float | None = Field(default=None, gt=0, lt=2)
    # Gallery-aware matching (local provider): a face within FACE_MATCH_EXPAND of the average
    # of the selfie and its direct matches, and within FACE_MATCH_GUARD of the selfie, matches
    # too. 0 switches it off. docs/FACES.md has the curves behind the defaults.
    face_match_expand: float | None = Field(default=None, ge=0, lt=2)
    face_match_guard: float | None = Field(default=None, ge=0, lt=2)
    # HOG only (FACE_DETECTOR=hog): event photos are searched on a copy this size (long
    # side) with this many doublings (docs/FACES.md, "Small faces").
    face_detect_max_side: int = Field(default=4096, ge=320, le=8192)
    face_detect_upsample: int = Field(default=0, ge=0, le=2)
    # An event's faces past this many (since its last segment) are written as an approximate
    # nearest-neighbour segment (usearch), mapped by every face worker of the node; fewer are
    # searched exactly (docs/SCALE.md has the measurements behind it).
    face_index_segment_faces: int = Field(default=200_000, ge=2, le=10_000_000)
    # Where those segments are kept (a cache of this node: deleting it only costs rebuilding).
    # Default: DATA_DIR/galleries.
    gallery_dir: Path | None = None
    # One process of the face-worker pool searches the event galleries for every worker of
    # the node (app/faces/searcher.py): the segments' pages, the faces after them and
    # usearch's tables are held once, not in each worker beside its models and photos.
    # false: each worker searches in its own memory.
    face_searcher: bool = True
    # How long a worker waits for the searcher before searching itself (a new node's first
    # lookup of a marathon-sized event writes its segments first: minutes).
    face_searcher_timeout_seconds: float = Field(default=900.0, gt=0, le=3600)

    @property
    def galleries_dir(self) -> Path:
        return self.gallery_dir or self.data_dir / "galleries"

    @model_validator(mode="after")
    def _require_complete_azure_configuration(self) -> FaceSettings:
        if self.face_provider == "azure":
            missing = [
                name
                for name, value in (
                    ("AZURE_FACE_ENDPOINT", self.azure_face_endpoint),
                    ("AZURE_FACE_KEY", self.azure_face_key),
                )
                if not value.strip()
            ]
            if missing:
                raise ValueError(
                    f"FACE_PROVIDER=azure needs {' and '.join(missing)} (the Face resource's endpoint, e.g. "
                    "https://<name>.cognitiveservices.azure.com/, and one of its keys). "
                    "Set them, or use FACE_PROVIDER=local."
                )
            if not self.azure_face_endpoint.startswith(("https://", "http://")):
                raise ValueError(
                    f"AZURE_FACE_ENDPOINT must be an http(s) URL, not {self.azure_face_endpoint!r}."
                )
        return self

    @model_validator(mode="after")
    def _recognizer_has_its_landmarks(self) -> FaceSettings:
        if self.face_recognizer == "sface" and self.face_detector != "yunet":
            raise ValueError(
                "FACE_RECOGNIZER=sface aligns faces on YuNet's landmarks: use FACE_DETECTOR=yunet, "
                "or FACE_RECOGNIZER=dlib with FACE_DETECTOR=hog."
            )
        return self
