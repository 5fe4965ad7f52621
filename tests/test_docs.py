"""The documentation stays true to the code: the configuration table of docs/OPERATIONS.md
names every setting of every settings class of ``app/core/``, and nothing else but the few
variables only the tooling reads."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

from pydantic import AliasChoices, AliasPath
from pydantic_settings import BaseSettings

import app.core

ROOT = Path(__file__).resolve().parents[1]
OPERATIONS = ROOT / "docs" / "OPERATIONS.md"

# Variables the configuration table documents that no settings class reads, and the files
# that read them.
READ_OUTSIDE_THE_SETTINGS = {
    "TEST_DATABASE_URL": ("Makefile", "tests/conftest.py"),
}


def settings_classes() -> list[type[BaseSettings]]:
    """Every pydantic-settings class defined in a module of ``app.core``."""
    found: dict[str, type[BaseSettings]] = {}
    for module_info in pkgutil.iter_modules(app.core.__path__):
        module = importlib.import_module(f"app.core.{module_info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            defined_here = cls.__module__ == module.__name__
            if defined_here and issubclass(cls, BaseSettings) and cls is not BaseSettings:
                found[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return list(found.values())


def environment_names(cls: type[BaseSettings]) -> dict[str, set[str]]:
    """For each field, the environment variables that set it (any of them will do), as
    pydantic-settings reads them: an alias as it is, else ``env_prefix`` + the field name."""
    config = cls.model_config
    prefix = config.get("env_prefix") or ""
    upper = not config.get("case_sensitive", False)
    names: dict[str, set[str]] = {}
    for field_name, field in cls.model_fields.items():
        alias = field.validation_alias or field.alias
        if isinstance(alias, str):
            choices = {alias}
        elif isinstance(alias, AliasChoices):
            choices = {c for c in alias.choices if isinstance(c, str)}
            choices |= {str(c.path[0]) for c in alias.choices if isinstance(c, AliasPath)}
        elif isinstance(alias, AliasPath):
            choices = {str(alias.path[0])}
        else:
            choices = {prefix + field_name}
        names[f"{cls.__name__}.{field_name}"] = {c.upper() for c in choices} if upper else choices
    return names


def all_settings() -> dict[str, set[str]]:
    names: dict[str, set[str]] = {}
    for cls in settings_classes():
        names.update(environment_names(cls))
    return names


def configuration_table() -> list[str]:
    """The variables of the configuration table: the first cell of every table row under
    the "## Configuration" heading of docs/OPERATIONS.md, up to the next "## " heading."""
    text = OPERATIONS.read_text()
    section = re.search(r"^## Configuration\n(.*?)(?=^## |\Z)", text, flags=re.M | re.S)
    assert section, "docs/OPERATIONS.md has no '## Configuration' section"
    variables = []
    for line in section.group(1).splitlines():
        cell = re.match(r"\|\s*`([A-Za-z0-9_]+)`\s*\|", line)
        if cell:
            variables.append(cell.group(1))
    return variables


def test_the_settings_classes_are_found() -> None:
    names = {cls.__name__ for cls in settings_classes()}
    assert "Settings" in names, names


def test_every_setting_is_in_the_configuration_table() -> None:
    table = set(configuration_table())
    missing = sorted(
        " or ".join(sorted(variables)) for variables in all_settings().values() if not variables & table
    )
    assert not missing, f"settings missing from the configuration table of docs/OPERATIONS.md: {missing}"


def test_the_configuration_table_names_no_setting_that_does_not_exist() -> None:
    real = set().union(*all_settings().values()) | set(READ_OUTSIDE_THE_SETTINGS)
    unknown = sorted(set(configuration_table()) - real)
    assert not unknown, f"docs/OPERATIONS.md documents variables nothing reads: {unknown}"


def test_the_configuration_table_has_one_row_per_variable() -> None:
    table = configuration_table()
    repeated = sorted({name for name in table if table.count(name) > 1})
    assert not repeated, f"documented more than once: {repeated}"


def test_the_variables_read_outside_the_settings_are_still_read_there() -> None:
    settings = set().union(*all_settings().values())
    table = set(configuration_table())
    for name, readers in READ_OUTSIDE_THE_SETTINGS.items():
        assert name in table, f"{name} is not in the configuration table"
        if name in settings:
            continue  # it became a setting: then its row needs no exception
        assert any(name in (ROOT / reader).read_text() for reader in readers), (
            f"{name}: none of {readers} reads it any more; drop it from the table and from this list"
        )
