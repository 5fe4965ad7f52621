"""Cross-domain actions: what a request does across several domains, written out as plain
calls in one place and used by both ways in (``app.api`` and ``app.web``).

- ``erasure``: erase a guest's account (selfies, templates at the face provider, files, then
  the account) and delete an event (its durable purge);
- ``export``: everything kept about a guest, as data and as a streamed zip;
- ``events``: the organizer's view of an event (guests, photo counts, faces, re-description
  progress) and a guest joining another event (their selfie is matched against it).

A domain never calls back into this package: nothing here is a hook filled by imports.
"""
