"""Reading a received email in a test: its text and HTML bodies, the links in its text, and
who it went to. Each helper raises AssertionError, saying what the message has instead, when
the part it looks for is missing."""

from __future__ import annotations

import re
from collections.abc import Sequence
from email.message import EmailMessage
from typing import Any

# Stops at whitespace and at the characters that close a URL in prose or markup.
_URL = re.compile(r"https?://[^\s<>\"'\]\)]+")
_TRAILING = ".,;:!?"


def _content_types(msg: EmailMessage) -> list[str]:
    return [part.get_content_type() for part in msg.walk()]


def _body(msg: EmailMessage, subtype: str) -> str:
    part = msg.get_body(preferencelist=(subtype,))
    if not isinstance(part, EmailMessage) or part.get_content_type() != f"text/{subtype}":
        raise AssertionError(f"no text/{subtype} part; the message has {_content_types(msg)}")
    content = part.get_content()
    if not isinstance(content, str):
        raise AssertionError(f"text/{subtype} part is not text: {type(content).__name__}")
    return content


def text_body(msg: EmailMessage) -> str:
    """The text/plain body."""
    return _body(msg, "plain")


def html_body(msg: EmailMessage) -> str:
    """The text/html body."""
    return _body(msg, "html")


def links(msg: EmailMessage) -> list[str]:
    """Every http(s) URL in the text/plain body, in order (a sentence's full stop left out)."""
    return [url.rstrip(_TRAILING) for url in _URL.findall(text_body(msg))]


def link_with(msg: EmailMessage, fragment: str) -> str:
    """The first link of the text body that contains ``fragment``."""
    found = links(msg)
    for url in found:
        if fragment in url:
            return url
    raise AssertionError(f"no link containing {fragment!r}; the links are {found}")


def to_address(msg: EmailMessage) -> str:
    """The one address of the To header (``user@example.org``, without a display name)."""
    header = msg["To"]
    addresses: Sequence[Any] = getattr(header, "addresses", ()) if header is not None else ()
    if len(addresses) != 1:
        raise AssertionError(f"expected one To address, got {header!r}")
    return str(addresses[0].addr_spec)
