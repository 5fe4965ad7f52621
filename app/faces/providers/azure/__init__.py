"""Azure Face as the face provider (``FACE_PROVIDER=azure``), split by job:

- :mod:`.calls`: every request's timeout, retries (tenacity), circuit breaker (pybreaker)
  and the translation of failures (``ProviderUnavailable`` postpones the job);
- :mod:`.images`: what is sent for an image (Azure takes JPEG/PNG up to 6 MB, 4096 px);
- :mod:`.api`: the operations used: detect, large face lists, training, find-similar;
- :mod:`.provider`: :class:`AzureProvider`, the ``FaceProvider`` contract on top of them.

Event photo faces go to a large face list per event (``event-{id}``), accepted selfies to one
deployment-wide list (``selfies``). Every change is followed by a training, so whatever the
database records as matchable is matchable in Azure. The design and its limits are in
docs/FACES.md ("Azure Face"). Importing this package imports the Azure SDK.
"""

from app.faces.providers.azure.provider import AzureProvider

__all__ = ["AzureProvider"]
