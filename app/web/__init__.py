"""The web app: server-rendered pages (Jinja2, htmx) for guests on a phone and organizers
in a browser, in French and English. Pages call the domains' services directly; see
``guest``, ``organizer``, ``links`` (the pages of mail), and ``templating`` for what every
page is given."""

from pathlib import Path

STATIC_DIR = Path(__file__).parent / "static"
