"""The privacy policy guests accept at registration (``GET /api/privacy``), and its version,
recorded with each guest's consent. Change the text, change the version."""

from __future__ import annotations

POLICY_VERSION = "2026-12-06"

POLICY = """\
# How this service uses your face

**What is stored.** Your account (username, email, display name, a salted hash of your password),
the events you joined and when you accepted this policy. When you upload a selfie: the image until
its face is checked (then it is deleted, unless the organizer's server is configured to keep it),
and a face template: 128 numbers computed from your face (or, when the server uses Azure Face, an
identifier of your face in Azure). For each event photo, the faces found in it, and which photos
your template matched.

**Mail.** We write to your address to confirm it, to reset your password or sign you in when you
ask, and, once it is confirmed, to tell you when new photos of you arrive: one message per event
after the organizer's upload has settled, at most every few hours, with the number of photos and
a link, never a photo or a face. Every such message has a one-click unsubscribe; your account
page has a switch per event and one for all. We keep, for each message, to whom, what kind and
when it was sent (not its text), and which photos you were told about; links we mail are stored
only as a fingerprint and work once, for a short time.

**Where.** On the organizer's server (its database and its files). With Azure Face, face images
are sent to Microsoft's Face service in the region the organizer chose. Mail goes through the
organizer's mail provider.

**For how long.** Your selfie template until you delete it, upload another, delete your account,
or the event's photos are purged (by default 30 days after the event ends). Event photos and
their faces are kept for the same time.

**Who sees it.** You see the photos you were matched in. The event's organizer sees the event's
photos, its guests and how often each changed their selfie. Nobody else.

**Your rights.** "Not me" removes a photo from your list for good; deleting your selfie erases its
template and your matches; deleting your account erases everything of yours; you can download all
of your data at any time.
"""
