"""etc/syncd.toml documents every key syncd knows, and is itself a valid config.

Keys are checked per section: a key counts as documented when it appears in its section as a
live key or as a commented-out ``# key = value`` line (which must be valid TOML and a valid
value). The line(s) above each key must be a comment that gives its default (or says it is
required). Connector kinds are checked for every connector the real registry loads; the
first-party kinds whose plugin is missing are skipped, one by one.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path

import pytest

import syncd.connectors.plugins
from syncd.config import CORE_SECTIONS, load
from syncd.config.loader import Problems
from syncd.config.model import AdminConfig, DaemonConfig, IntegrationConfig, ReceiverConfig
from syncd.config.schema import REQUIRED
from syncd.config.sections import toml_value, validate_options

EXAMPLE = Path(__file__).resolve().parents[2] / "etc" / "syncd.toml"
TEXT = EXAMPLE.read_text()
DATA = tomllib.loads(TEXT)
REGISTRY = syncd.connectors.plugins.load()
FIRST_PARTY = ("tribe", "apsis", "ms365", "lime")
INTEGRATION = "integrations.tribe-apsis"

_HEADER = re.compile(r"^\[\[?\s*([^\]]+?)\s*\]\]?\s*$")
_KEY = re.compile(r"^(#\s*)?([A-Za-z0-9_-]+)\s*=")


def _scan():
    """Section -> key -> (line index, live?, value); sub-table headers count as keys."""
    lines = TEXT.splitlines()
    sections: dict[str, dict[str, tuple[int, bool, object]]] = {}
    current = None
    for i, line in enumerate(lines):
        header = _HEADER.match(line)
        if header:
            current = header[1]
            parent, _, leaf = current.rpartition(".")
            sections.setdefault(current, {})
            sections.setdefault(parent, {}).setdefault(leaf, (i, True, None))
            continue
        match = _KEY.match(line)
        if not match or current is None:
            continue
        commented = bool(match[1])
        try:
            value = tomllib.loads(line[len(match[1] or ""):])[match[2]]
        except tomllib.TOMLDecodeError:  # prose that looks like a key: not a key line
            continue
        sections[current].setdefault(match[2], (i, not commented, value))
    return lines, sections


LINES, SECTIONS = _scan()


class _AnyEnv(Mapping):
    def __getitem__(self, key):
        return "value"

    def __contains__(self, key):
        return True

    def __iter__(self):
        return iter(())

    def __len__(self):
        return 0


def _comment_block_above(index: int) -> list[str]:
    block = []
    i = index - 1
    while i >= 0 and LINES[i].startswith("#"):
        block.append(LINES[i])
        i -= 1
    return list(reversed(block))


def check_documented(section: str, options) -> None:
    documented = SECTIONS.get(section, {})
    missing = [o.name for o in options if o.name not in documented]
    assert not missing, f"[{section}] does not document: {', '.join(missing)}"
    for option in options:
        index, live, value = documented[option.name]
        block = _comment_block_above(index)
        # the nearest comment lines that are not themselves a commented-out key
        doc = []
        for line in reversed(block):
            if _KEY.match(line) and _is_toml_key_line(line):
                break
            doc.insert(0, line)
        text = " ".join(doc).lower()
        assert doc, f"[{section}] {option.name} has no comment above it"
        want = "required" if option.required else "default"
        assert want in text, f"[{section}] {option.name}: its comment does not say its {want}"
        if not option.required and option.default is not None:
            shown = toml_value(option.default)
            assert shown.lower() in text, f"[{section}] {option.name}: default {shown} not in {doc}"
        if value is not None:  # live or commented out: uncommented, it must be valid
            problems = Problems(None)
            validate_options({option.name: value}, [option], section, problems,
                             base_dir="/", environ=_AnyEnv())
            assert not problems.errors, [str(e) for e in problems.errors]
        if not live and option.default not in (None, "", REQUIRED):
            # commented out means the default applies: show the real default
            assert value == option.default, \
                f"[{section}] # {option.name} = {value!r}, but its default is {option.default!r}"


def _is_toml_key_line(line: str) -> bool:
    match = _KEY.match(line)
    try:
        tomllib.loads(line[len(match[1] or ""):])
    except tomllib.TOMLDecodeError:
        return False
    return True


@pytest.mark.parametrize("section,key", [
    ("daemon", "daemon"), ("receiver", "receiver"), ("admin", "admin"),
    ("connections.tribe", "connections.*"), ("connections.apsis", "connections.*"),
    ("connections.lime", "connections.*"),
    (INTEGRATION, "integrations.*"), (f"{INTEGRATION}.consents", "integrations.*.consents"),
    (f"{INTEGRATION}.overviews", "integrations.*.overviews"),
])
def test_core_section_documented(section, key):
    check_documented(section, CORE_SECTIONS[key])


def _kinds():
    return sorted(set(FIRST_PARTY) | set(REGISTRY.connectors))


@pytest.mark.parametrize("kind", _kinds())
def test_connector_options_documented(kind):
    cls = REGISTRY.connector(kind)
    if cls is None:
        pytest.skip(f"the {kind} plugin is not loaded")
    names = [n for n, c in DATA["connections"].items() if c.get("kind") == kind]
    assert names, f"etc/syncd.toml has no connection of kind {kind}"
    assert cls.options, f"{kind} declares no options"
    check_documented(f"connections.{names[0]}", cls.options)


def _env_names() -> set[str]:
    return set(re.findall(r'\{\s*env\s*=\s*"([A-Za-z_][A-Za-z0-9_]*)"\s*\}', TEXT))


def test_example_loads_when_its_env_vars_are_set():
    missing = [k for k in FIRST_PARTY if REGISTRY.connector(k) is None]
    if missing:
        pytest.skip(f"plugins not loaded: {', '.join(missing)}")
    environ = {name: f"value-of-{name}" for name in _env_names()}
    config = load(str(EXAMPLE), REGISTRY, environ=environ)
    assert set(config.connections) == {"tribe", "apsis", "outlook", "lime"}
    assert "company.name" in config.integrations["lime-apsis"].fields
    integration = config.integrations["tribe-apsis"]
    assert integration.conditions and integration.consents and integration.selections
    assert "Contact.Organization.Name" in integration.fields
    secret = config.connections["tribe"].options["client_secret"]
    assert secret.source == "env:SYNCD_TRIBE_CLIENT_SECRET"


def test_example_core_sections_are_valid_whatever_plugins_are_loaded():
    environ = {name: f"value-of-{name}" for name in _env_names()}
    missing = {k for k in FIRST_PARTY if REGISTRY.connector(k) is None}
    try:
        load(str(EXAMPLE), REGISTRY, environ=environ)
        return
    except Exception as exc:  # ConfigErrors
        errors = getattr(exc, "errors", None)
        assert errors is not None, exc
    expected = {f"connections.{n}.kind" for n, c in DATA["connections"].items()
                if c.get("kind") in missing}
    unexpected = [str(e) for e in errors if e.key not in expected]
    assert not unexpected, unexpected


def test_example_shape():
    integration = DATA["integrations"]["tribe-apsis"]
    assert DATA["connections"]["tribe"]["kind"] == "tribe"
    assert DATA["connections"]["apsis"]["kind"] == "apsis"
    assert integration["conditions"] and integration["selections"] and integration["consents"]
    assert "Contact.Organization.Name" in integration["fields"]
    assert integration["daily_creation"]["timezone"]
    overviews = integration["overviews"]
    assert any("schedule" in o for o in overviews) and any("schedule" not in o for o in overviews)
    secrets = [v for c in DATA["connections"].values() for k, v in c.items()
               if isinstance(v, dict) and k != "groups"]
    assert secrets and all(set(v) == {"env"} for v in secrets)


@pytest.mark.parametrize("key,cls", [("daemon", DaemonConfig), ("receiver", ReceiverConfig),
                                     ("admin", AdminConfig)])
def test_core_options_match_the_model(key, cls):
    defaults = cls()
    options = CORE_SECTIONS[key]
    assert [o.name for o in options] == list(cls.__dataclass_fields__)
    for option in options:
        assert option.default == getattr(defaults, option.name), option.name
        assert option.doc


def test_integration_options_match_the_model():
    fields = IntegrationConfig.__dataclass_fields__
    options = {o.name: o for o in CORE_SECTIONS["integrations.*"]}
    assert set(options) == set(fields) - {"name"}
    for name, option in options.items():
        field = fields[name]
        if option.default is REQUIRED:
            continue
        if name in ("conditions", "consents", "overviews", "response_events"):
            assert not option.default
        elif name in ("fields", "selections"):
            assert option.default == {}
        else:
            assert option.default == field.default, name


def test_schedule_keys_documented():
    """A schedule is an inline table, so its keys are documented in the comment above the
    first key that takes one (daily_creation); the example schedules are valid."""
    from syncd.config.sections import SCHEDULE_OPTIONS

    index, live, value = SECTIONS[INTEGRATION]["daily_creation"]
    text = " ".join(_comment_block_above(index))
    for option in SCHEDULE_OPTIONS:
        assert f"`{option.name}`" in text or f"{option.name} =" in text, option.name
        want = "required" if option.required else "default"
        assert want in text.lower(), option.name
    schedules = [value, SECTIONS[f"{INTEGRATION}.overviews"]["schedule"][2]]
    assert all(isinstance(s, dict) and s.get("timezone") for s in schedules)
    problems = Problems(None)
    from syncd.config.integrations import _schedule

    for s in schedules:
        assert _schedule(s, "x", problems, "/", {}) is not None
    assert not problems.errors, [str(e) for e in problems.errors]
