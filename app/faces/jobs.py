"""The face workers' erasures at a remote provider (``ProviderErasure``): after the rows of
selfies, photos or events are gone, their faces go from Azure Face too, retried (postponed)
while Azure cannot answer, so that an erasure is never lost."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.core.database import utcnow
from app.faces.models import ProviderErasure
from app.faces.providers import get_face_provider
from app.jobs.kinds import Outcome, register, status_kind
from app.jobs.models import JobStatus


def handle(session: Session, erasure: ProviderErasure) -> Outcome:  # noqa: ARG001 - the Handler signature
    provider = get_face_provider()
    if erasure.provider != provider.name:
        return Outcome(
            {
                "status": JobStatus.failed,
                "error_code": "provider_changed",
                "error_message": f"These faces are at {erasure.provider}; this server uses {provider.name}.",
            }
        )
    signatures = [s.encode() for s in (erasure.signatures or "").splitlines() if s]
    if erasure.what == "selfies":
        for signature in signatures:
            provider.forget_selfie(signature)
    elif erasure.what == "faces" and erasure.event_id is not None:
        provider.forget_faces(event_id=erasure.event_id, signatures=signatures)
    elif erasure.what == "event" and erasure.event_id is not None:
        provider.forget_event(erasure.event_id)
    return Outcome({"status": JobStatus.done, "signatures": None, "finished_at": utcnow()})


ERASURE_JOB = register(
    status_kind(name="provider-erasure", model=ProviderErasure, handle=handle, priority=15)
)
