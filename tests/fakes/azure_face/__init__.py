"""A fake of the Azure Face REST API (v1.0), served over real HTTP on 127.0.0.1.

The real SDK client (``azure-cognitiveservices-vision-face``, msrest) talks to it exactly as
to Azure: same paths, verbs, query parameters, JSON bodies, status codes and error shape
(``{"error": {"code", "message"}}``). Implemented: ``POST /detect``, ``PUT``/``GET
/largefacelists/{id}``, ``POST /largefacelists/{id}/persistedfaces``, ``POST
/largefacelists/{id}/train``, ``GET /largefacelists/{id}/training`` and ``POST
/findsimilars``. Every request needs the ``Ocp-Apim-Subscription-Key`` header (401 otherwise).

Faces are real: detection runs the project's ``LocalDlibEngine`` on the posted image, so the
fixtures behave like real photos.

* Rectangles are the engine's boxes, largest face first (Azure's order).
* ``qualityForRecognition`` comes from the engine's metrics of the face crop
  (:func:`app.faces.engine.face_quality`): ``low`` when sharpness < 40, brightness < 40 or
  the face's short side < 40 px (what the local engine would refuse as blurry or dark);
  ``high`` when sharpness >= 80, brightness >= 60 and the side >= 100 px; else ``medium``.
  Real fixture selfies (sharpness 89-301, brightness 108-148) are ``medium`` or ``high``; a
  radius-6 Gaussian blur or darkening to 15 % makes them ``low``.
* Find-similar ``confidence = clip(1 - euclidean distance, 0, 1)`` between dlib descriptors:
  monotonic, and 0.5 is the local provider's match threshold (distance 0.5), so person A vs
  A is >= 0.5 and A vs B < 0.5 with the fixtures. ``matchPerson`` keeps confidence >= 0.5;
  ``matchFace`` returns the ranking as is.
* Large face list semantics: find-similar only sees the faces present when the last
  completed training *started* (never trained: 400 ``LargeFaceListNotTrained``); a training
  takes ``train_seconds`` (status ``running`` then ``succeeded``); training while one runs is
  409 ``ConcurrentOperationConflict``; list and query face must share a recognition model.
* Azure's image limits: JPEG or PNG (400 ``InvalidImage`` otherwise), 1 KB to 6 MB and at most
  4096 px a side (400 ``InvalidImageSize``).

Fault injection, consumed by the next matching requests (optionally of one endpoint, named
as in :attr:`FakeAzureFace.calls`): :meth:`fail_next` (an HTTP error status),
:meth:`throttle_next` (429 + ``Retry-After``), :meth:`delay_next` (answer late, then
normally). :meth:`stop` / :meth:`start` take the server down and back on the same port.
``calls`` counts every request per endpoint (faulted ones included).

The package: :mod:`.state` (limits, confidence and quality rules, error bodies, the
records), :mod:`.base` (state, fault injection, key check, ``POST /detect``),
:mod:`.lists` (large face lists and find-similar), :mod:`.server` (routes, start and stop).
"""

from tests.fakes.azure_face.server import FakeAzureFace
from tests.fakes.azure_face.state import (
    BASE,
    ENDPOINTS,
    MAX_BYTES,
    MAX_SIDE,
    MIN_BYTES,
    FakeList,
    confidence,
    jpeg,
    quality_for_recognition,
)

__all__ = [
    "BASE",
    "ENDPOINTS",
    "MAX_BYTES",
    "MAX_SIDE",
    "MIN_BYTES",
    "FakeAzureFace",
    "FakeList",
    "confidence",
    "jpeg",
    "quality_for_recognition",
]
