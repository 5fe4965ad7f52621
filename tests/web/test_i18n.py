"""The catalogs are complete: every text of the pages and every error code of the API has a
French and an English message, with the same placeholders."""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from app.core.i18n import LANGUAGES, LOCALES_DIR
from app.web.messages import ERROR_MESSAGES

ROOT = Path(__file__).resolve().parents[2]
# Every way the code base names an error code: AppError(code=...), class attributes, the error
# handlers' error_response(status, "code", ...), and job failures recorded in rows.
_CODE_PATTERNS = [
    re.compile(r'\bcode\s*(?::\s*str\s*)?=\s*"([a-z][a-z_]+)"'),
    re.compile(r'error_response\(\s*\d+,\s*"([a-z][a-z_]+)"'),
    re.compile(r'"error_code":\s*(?:[\w.]+ or )?"([a-z][a-z_]+)"'),
    re.compile(r"_HTTP_CODES = \{[^}]*\}", re.S),
]


def _raised_codes() -> set[str]:
    codes: set[str] = set()
    for path in (ROOT / "app").rglob("*.py"):
        if "migrations" in path.parts:
            continue
        source = path.read_text()
        for pattern in _CODE_PATTERNS[:3]:
            codes.update(pattern.findall(source))
        for table in _CODE_PATTERNS[3].findall(source):
            codes.update(re.findall(r'"([a-z_]+)"', table))
    return codes


def _catalog(language: str) -> dict[str, object]:
    with (LOCALES_DIR / language / "LC_MESSAGES" / "messages.po").open("rb") as po:
        return {m.id if isinstance(m.id, str) else m.id[0]: m.string for m in read_po(po) if m.id}


def _extracted() -> set[str]:
    # As babel.cfg: the Python of the whole app, the pages' and the mails' templates.
    method_map = [
        ("app/**.py", "python"),
        ("app/web/templates/**.html", "jinja2"),
        ("app/mail/templates/**.*", "jinja2"),
    ]
    jinja = {"extensions": "jinja2.ext.i18n"}
    options = {"app/web/templates/**.html": jinja, "app/mail/templates/**.*": jinja}
    found = extract_from_dir(
        str(ROOT),
        method_map,
        options_map=options,
        keywords={"_": None, "N_": None, "gettext": None, "ngettext": (1, 2)},
    )
    return {m[2] if isinstance(m[2], str) else m[2][0] for m in found}


def test_every_error_code_of_the_api_has_a_message_for_people() -> None:
    codes = _raised_codes()
    assert {"no_face", "event_not_found", "weak_password", "internal_error"} <= codes  # the scan works
    assert sorted(codes - ERROR_MESSAGES.keys()) == []


def test_every_text_of_the_pages_is_in_both_catalogs_and_translated_to_french() -> None:
    texts = _extracted()
    assert len(texts) > 150 and set(ERROR_MESSAGES.values()) <= texts
    for language in LANGUAGES:
        catalog = _catalog(language)
        assert sorted(texts - catalog.keys()) == [], f"missing in {language}: run `make messages`"
    french = _catalog("fr")
    untranslated = [
        t for t in texts if not (message := french[t]) or (isinstance(message, tuple) and not all(message))
    ]
    assert untranslated == []


def test_translations_keep_their_placeholders() -> None:
    placeholder = re.compile(r"%\(\w+\)[sd]")
    for message_id, translated in _catalog("fr").items():
        forms = translated if isinstance(translated, tuple) else (translated,)
        for form in forms:
            assert sorted(placeholder.findall(form)) == sorted(placeholder.findall(message_id)), message_id
