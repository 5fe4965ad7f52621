"""The ``faces`` (one per face found in an event photo), ``event_galleries`` (each event's
face counter), ``face_matches`` and ``not_me`` tables, and two job tables:
``provider_erasures`` (faces to erase at a remote provider) and ``face_reembeds`` (an event's
faces described again after the recognizer changed)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Float, ForeignKey, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.core.database import Base, utcnow
from app.jobs.models import LeasedJob


class Face(Base):
    __tablename__ = "faces"

    id: Mapped[int] = mapped_column(primary_key=True)
    photo_id: Mapped[int] = mapped_column(ForeignKey("photos.id", ondelete="CASCADE"))
    # Denormalised from the photo: a whole event's gallery loads with one indexed scan.
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    left: Mapped[int]
    top: Mapped[int]
    right: Mapped[int]
    bottom: Mapped[int]
    # Provider-specific (local: 128 float32; Azure: its persisted face id); only faces of
    # the configured provider are matched.
    descriptor: Mapped[bytes] = mapped_column(LargeBinary)
    provider: Mapped[str] = mapped_column(String(16), default="local", server_default="local")
    # The model that made the descriptor (app.faces.recognizers); only faces of the model
    # the service runs are matched, never two models against each other.
    model: Mapped[str] = mapped_column(String(32), server_default="dlib-resnet-v1")
    # The event's counter when the face was stored (``EventGallery``): commit order, so a
    # gallery loaded up to a number holds every face at or below it.
    seq: Mapped[int] = mapped_column(BigInteger, server_default="0")


class EventGallery(Base):
    """How many faces an event has ever stored: ``seq`` is taken (and its row locked until
    commit) by the transaction that stores faces, so numbers are handed out in commit order.
    Readers compare it with what they loaded instead of counting faces."""

    __tablename__ = "event_galleries"

    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, default=0)
    # Names this gallery's files on the nodes (``app.faces.ann``): an event id SQLite hands
    # out again after a deletion never maps the files of the event that had it before.
    token: Mapped[str] = mapped_column(String(16))


class FaceMatch(Base):
    """The best face of a photo that matched a guest's current selfie."""

    __tablename__ = "face_matches"
    __table_args__ = (UniqueConstraint("selfie_id", "photo_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    selfie_id: Mapped[int] = mapped_column(ForeignKey("selfies.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    photo_id: Mapped[int] = mapped_column(ForeignKey("photos.id", ondelete="CASCADE"))
    face_id: Mapped[int] = mapped_column(ForeignKey("faces.id", ondelete="CASCADE"))
    # Float as migrated (SQLAlchemy 2.1 would map float to Double): double precision on PostgreSQL.
    distance: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class NotMe(Base):
    """A guest said a photo is not of them: it is never matched to them again."""

    __tablename__ = "not_me"
    __table_args__ = (UniqueConstraint("user_id", "photo_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    photo_id: Mapped[int] = mapped_column(ForeignKey("photos.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ProviderErasure(LeasedJob, Base):
    """Faces to erase at a remote provider (Azure Face) after their rows went: a durable job,
    retried while the provider cannot answer. ``what``: ``selfies`` (signatures in the selfie
    list), ``faces`` (signatures in an event's list) or ``event`` (the event's whole list)."""

    __tablename__ = "provider_erasures"

    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(String(16))
    what: Mapped[str] = mapped_column(String(16))
    event_id: Mapped[int | None]
    signatures: Mapped[str | None] = mapped_column(Text)  # one per line
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class FaceReembed(LeasedJob, Base):
    """An event's faces being described again by ``model`` after the recognizer changed (a
    durable job, ``faces/reembed.py``): photo by photo, the new faces are stored beside the
    old ones, then the old ones go. ``photos_done`` of ``photos_total`` is the organizer's
    progress."""

    __tablename__ = "face_reembeds"

    id: Mapped[int] = mapped_column(primary_key=True)
    # No index: one row per event and recognizer switch.
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    model: Mapped[str] = mapped_column(String(32))
    photos_total: Mapped[int] = mapped_column(default=0)
    photos_done: Mapped[int] = mapped_column(default=0)
    last_photo_id: Mapped[int] = mapped_column(default=0)  # photos are taken in id order
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
