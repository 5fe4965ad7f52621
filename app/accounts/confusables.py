"""Email addresses that would pass for another one: mixed scripts and look-alike letters
(after Unicode TR39, "Restriction levels" and "Whole-script confusables", without its data).

``alice@example.com`` whose first letter is a Cyrillic a (U+0430) is another account, yet
reads the same, so such addresses are refused at registration: a part (the local part, or one
label of the domain) may not mix scripts, except the mixes a language writes with Latin
(Japanese, Chinese, Korean); and a part written wholly in Cyrillic, Greek or Armenian with
letters that all look Latin ("ace" in three Cyrillic letters) is refused too. Usernames are
ASCII only (``service.username_problem``), so they cannot mix scripts.
"""

from __future__ import annotations

import unicodedata

# A letter's script, from the first word of its Unicode name ("CYRILLIC SMALL LETTER A").
_NAME_SCRIPTS = {
    "CJK": "Han",
    "IDEOGRAPHIC": "Han",
    "KATAKANA-HIRAGANA": "Katakana",
    "HALFWIDTH": "Katakana",
}
# TR39 "highly restrictive": Latin may be written with these scripts in one word.
_ALLOWED_MIXES = (
    frozenset({"LATIN", "Han", "HIRAGANA", "Katakana", "KATAKANA"}),
    frozenset({"LATIN", "Han", "HANGUL"}),
    frozenset({"LATIN", "Han", "BOPOMOFO"}),
)
# Lower-case letters of other scripts that read as Latin ones (a subset of TR39's
# confusables.txt: the ones fonts draw alike).
_LATIN_LOOKALIKES = frozenset(
    "аеорсхуіјѕһԁԛԝӏүь"  # Cyrillic: a e o p c x y i j s h d q w l y b
    "οαινκρυχϲ"  # Greek: o a i v k p u x c
    "օսհոզց"  # noqa: RUF001 - Armenian: o u h n q g
)
_LOOKALIKE_SCRIPTS = frozenset({"CYRILLIC", "GREEK", "ARMENIAN"})


def _script(char: str) -> str | None:
    """The script of a letter; None for what every script uses (digits, marks, signs)."""
    if not unicodedata.category(char).startswith("L"):
        return None
    first = unicodedata.name(char, "UNKNOWN").split(" ", 1)[0]
    if first == "MODIFIER":
        return None
    return _NAME_SCRIPTS.get(first, first)


def part_problem(part: str) -> str | None:
    """Why ``part`` (a local part or a domain label, NFKC-normalised) could pass for another
    address, or None."""
    scripts = {s for s in map(_script, part) if s is not None}
    if len(scripts) > 1 and not any(scripts <= allowed for allowed in _ALLOWED_MIXES):
        return "mixes alphabets"
    letters = [c for c in part.casefold() if _script(c) is not None]
    if letters and scripts <= _LOOKALIKE_SCRIPTS and all(c in _LATIN_LOOKALIKES for c in letters):
        return "is written with letters that look like Latin ones"
    return None


def email_problem(email: str) -> str | None:
    """Why the (normalised) ``email`` could be mistaken for another address, or None."""
    local, _, domain = unicodedata.normalize("NFKC", email).rpartition("@")
    for what, part in [("The part before @", local), *(("The domain", label) for label in domain.split("."))]:
        problem = part_problem(part)
        if problem:
            return f"{what} {problem}: it could be mistaken for another address."
    return None
