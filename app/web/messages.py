"""What each error code of the API means for a person, to show on the pages.

The API's own ``message`` is written for developers and stays English; the pages show these
instead, translated by the catalogs (``tests/web/test_i18n.py`` checks that every code the
code base raises is here and has a French translation).
"""

from __future__ import annotations

from app.core.i18n import N_

ERROR_MESSAGES: dict[str, str] = {
    # Accounts
    "invalid_credentials": N_("Wrong username, email or password."),
    "invalid_token": N_("Your session has expired: please log in again."),
    "not_authenticated": N_("Please log in first."),
    "invalid_username": N_("Choose a username of 3 to 30 letters, digits, dots, dashes or underscores."),
    "invalid_email": N_("This email address does not look valid."),
    "username_taken": N_("This username is already taken: choose another one."),
    "email_taken": N_("An account already uses this email: log in instead."),
    "weak_password": N_("This password is too easy to guess: use a longer phrase of unrelated words."),
    "wrong_password": N_("The password is not right."),
    "consent_required": N_("Please accept the processing of your face to find your photos."),
    "organizer_has_events": N_("Delete your events before deleting your account."),
    "organizer_required": N_("Only organizers can do this."),
    "csrf_failed": N_("This form has expired. Reload the page and try again."),
    # Mail
    "mail_deferred": N_("The mail server has not taken this message yet: it is tried again later."),
    "mail_refused": N_("The mail server refused this message for good."),
    # Events
    "event_not_found": N_("No event has this code. Check the code on your invitation."),
    "event_closed": N_("This event is closed to new guests."),
    "guest_not_found": N_("This guest is not in the event."),
    "guest_barred": N_("The organizer removed you from this event: you cannot join it again."),
    "ban_not_found": N_("This guest is not barred from the event."),
    # Selfies
    "no_face": N_("No face found: face the camera in good light."),
    "multiple_faces": N_("More than one face: take the selfie alone."),
    "face_too_small": N_("Your face is too small: hold the phone closer."),
    "too_blurry": N_("The photo is blurry: hold the phone still and try again."),
    "too_dark": N_("The photo is too dark: move to better light."),
    "face_hidden": N_(
        "Your face seems hidden (mask or sunglasses?): take a selfie with your face uncovered, "
        "whole in the frame."
    ),
    "face_turned": N_("Your face is turned away: look straight at the camera."),
    "low_quality": N_("The photo is not clear enough: try again in good light, facing the camera."),
    "selfie_rejected": N_("This selfie cannot be used: try another one."),
    "selfie_failed": N_("Your selfie could not be checked: try again."),
    "no_selfie": N_("You have not taken a selfie yet."),
    "selfie_changes_exhausted": N_("You have changed your selfie too often today: try again tomorrow."),
    # Photos and files
    "photo_not_found": N_("This photo does not exist or is not yours to see."),
    "photo_not_ready": N_("This photo is still being prepared: try again in a moment."),
    "unsupported_format": N_("This file is not a photo we can read: use JPEG, PNG, WebP or HEIC."),
    "file_too_large": N_("This file is too large."),
    "image_too_large": N_("This image has too many pixels."),
    "payload_too_large": N_("What you sent is too large."),
    "too_many_files": N_("Too many files at once: send them in smaller batches."),
    "storage_full": N_("The server is out of space: tell the organizer."),
    "direct_upload_unavailable": N_("Photos are sent through this server here, not straight to storage."),
    "too_many_uploads": N_("Too many photos are waiting for their upload to finish: wait a little."),
    "upload_missing": N_("The photo did not reach the storage: send it again."),
    "upload_size_mismatch": N_("The photo arrived incomplete: send it again."),
    "upload_incomplete": N_("The photo's parts could not be put together: send it again."),
    "content_hash_mismatch": N_("The photo received is not the one described: send it again."),
    "original_missing": N_("The original file of this photo is missing: upload it again."),
    "provider_changed": N_("The face service changed: this photo is indexed again."),
    "processing_error": N_("This photo could not be processed."),
    "gave_up": N_("This photo could not be processed after several tries."),
    "postponed": N_("Waiting for the face service: it will be retried."),
    # Anything else
    "provider_unavailable": N_("The face service is unavailable for a moment: try again soon."),
    "database_unavailable": N_("The service is busy: try again in a moment."),
    "db_pool_exhausted": N_("The service is busy: try again in a moment."),
    "service_unavailable": N_("The service is busy: try again in a moment."),
    "too_many_requests": N_("Too many attempts: wait a little and try again."),
    "invalid_json": N_("This request is not valid."),
    "validation_error": N_("Some fields are missing or not valid."),
    "missing_parameter": N_("Some fields are missing."),
    "ops_token_required": N_("This page is for the operators."),
    "forbidden": N_("You are not allowed to do this."),
    "not_found": N_("This page does not exist."),
    "gone": N_("This is no longer available."),
    "conflict": N_("This conflicts with the current state: reload the page."),
    "bad_request": N_("This request is not valid."),
    "method_not_allowed": N_("This request is not valid."),
    "not_acceptable": N_("This request is not valid."),
    "request_timeout": N_("The connection was too slow: try again."),
    "http_error": N_("Something went wrong: try again."),
    "internal_error": N_("Something went wrong on our side: try again in a moment."),
}

#: A guest's selfie status, as the organizer's guest list shows it.
SELFIE_STATUSES = (N_("checking"), N_("matching"), N_("ready"), N_("rejected"))
