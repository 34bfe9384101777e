"""Bad configs: hypothesis-generated malformed TOML and structurally wrong configs.

- ``syncd.config.check()`` returns errors and never raises; each error line names the key
  (or the TOML line) that is wrong, and for a structural mistake it names the very key broken;
- a reload onto a broken config file is refused: ``ok`` is False, the daemon keeps the same
  config object and routing table, and it still applies webhooks.
"""

from __future__ import annotations

import copy
import re
import tomllib

import pytest
import tomli_w
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st
from reliability_support import SECRET, wait_for

from syncd import config as config_mod
from syncd.config.sections import (
    ADMIN_OPTIONS,
    DAEMON_OPTIONS,
    INTEGRATION_OPTIONS,
    RECEIVER_OPTIONS,
    toml_key,
)
from syncd.testing import memory_registry

REGISTRY = memory_registry()

BASE = {
    "daemon": {"state_dir": "state", "stop_timeout": 5.0, "log_level": "info"},
    "receiver": {"port": 0, "max_body_bytes": 65536},
    "admin": {"port": 0},
    "connections": {
        "crm": {"kind": "memory", "world": "cfg-fuzz", "webhook_secret": SECRET},
        "mkt": {"kind": "memory", "world": "cfg-fuzz"},
    },
    "integrations": {
        "main": {
            "source": "crm", "destination": "mkt", "page_size": 7,
            "conditions": {"Type": "A"},
            "fields": {"FirstName": "firstname", "Contact.Organization.Name": "company"},
            "consents": [{"label": "news", "topic": "t1", "channel": "email"}],
            "daily_creation": {"at": "02:30", "timezone": "Europe/Amsterdam"},
        },
    },
}
BASE_TEXT = tomli_w.dumps(BASE)

# where an error is: "line L, column C", "(file)", or a dotted key such as
# integrations.main.consents[0].channel or connections."a b".kind
_SEG = r'(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*")'
KEY_RE = re.compile(rf"^(?P<key>{_SEG}(?:\.{_SEG}|\[\d+\])*): \S")
LINE_RE = re.compile(r"^line (?P<line>\d+), column (?P<col>\d+): invalid TOML: \S")
FILE_RE = re.compile(r"^\(file\): \S")


def located(line: str, path: str) -> str:
    """The key (or ``line N``) an error line names; fails the test if it names none."""
    assert isinstance(line, str) and line.startswith(f"{path}: "), line
    rest = line[len(path) + 2:]
    for regex in (LINE_RE, KEY_RE, FILE_RE):
        match = regex.match(rest)
        if match:
            if regex is LINE_RE:
                return f"line {match['line']}"
            return match["key"] if regex is KEY_RE else "(file)"
    raise AssertionError(f"the error names no key and no line: {line!r}")


def check(path: str) -> list[str]:
    try:
        errors = config_mod.check(path, REGISTRY, environ={})
    except Exception as exc:  # the property: check() reports, it never raises
        raise AssertionError(f"check() raised {type(exc).__name__}: {exc}") from exc
    assert isinstance(errors, list)
    return errors


def test_the_base_config_is_valid(tmp_path):
    path = tmp_path / "syncd.toml"
    path.write_text(BASE_TEXT)
    assert check(str(path)) == []


# -- malformed TOML -------------------------------------------------------------------------------

junk = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12) | \
    st.sampled_from(["[", "]", "=", '"', "'", "{", "}", "[[", "]]", "\n", "= =", '"""', "\\",
                     "\t", ",", ".", "#", "key", "[daemon]", "[connections.crm]", "\x00", "\x7f"])


@st.composite
def mutated_text(draw):
    text = BASE_TEXT
    for _ in range(draw(st.integers(1, 3))):
        how = draw(st.sampled_from(["insert", "delete", "replace", "truncate", "dup_line"]))
        i = draw(st.integers(0, len(text)))
        if how == "insert":
            text = text[:i] + draw(junk) + text[i:]
        elif how == "delete":
            text = text[:i] + text[i + draw(st.integers(1, 20)):]
        elif how == "replace":
            text = text[:i] + draw(junk) + text[i + draw(st.integers(1, 5)):]
        elif how == "truncate":
            text = text[:i]
        else:
            lines = text.splitlines(keepends=True)
            j = draw(st.integers(0, max(0, len(lines) - 1)))
            text = "".join(lines[:j + 1] + lines[j:j + 1] + lines[j + 1:])
    return text


def toml_ok(text: str) -> bool:
    try:
        tomllib.loads(text)
        return True
    except tomllib.TOMLDecodeError:
        return False


@settings(max_examples=250, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(text=mutated_text() | junk)
def test_malformed_toml_gets_errors_that_name_a_line(tmp_path, text):
    path = tmp_path / "syncd.toml"
    path.write_text(text, encoding="utf-8")
    errors = check(str(path))
    if not toml_ok(text):
        assert len(errors) == 1, errors
        where = located(errors[0], str(path))
        assert where.startswith("line "), errors
        assert 1 <= int(where.split()[1]) <= text.count("\n") + 1, (errors, text.count("\n"))
    else:  # it still parses: valid, or each problem names its key
        for line in errors:
            located(line, str(path))


@settings(max_examples=30, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(min_size=1, max_size=64))
def test_a_file_that_is_not_utf8_is_reported_not_raised(tmp_path, data):
    path = tmp_path / "syncd.toml"
    path.write_bytes(b"\xff" + data)
    errors = check(str(path))
    assert len(errors) == 1 and located(errors[0], str(path)) == "(file)", errors


# -- structurally wrong configs -------------------------------------------------------------------

SECTIONS = {
    "daemon": DAEMON_OPTIONS,
    "receiver": RECEIVER_OPTIONS,
    "admin": ADMIN_OPTIONS,
    "integrations.main": INTEGRATION_OPTIONS,
}
names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_-0123456789 .\"é", min_size=1, max_size=12)
safe_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]),
                    max_size=20)
toml_scalars = st.booleans() | st.integers(-2**40, 2**40) | \
    st.floats(allow_nan=False, allow_infinity=False) | safe_text
toml_values = st.recursive(toml_scalars, lambda kids: st.lists(kids, max_size=3)
                           | st.dictionaries(names, kids, max_size=3), max_leaves=5)
WRONG = {  # values that are certainly not of the type
    str: st.integers() | st.booleans() | st.lists(st.integers(), max_size=2)
    | st.dictionaries(names, st.integers(), max_size=2) | st.floats(allow_nan=False),
    int: safe_text | st.booleans()
    | st.floats(allow_nan=False).filter(lambda f: not f.is_integer())
    | st.lists(st.integers(), max_size=2),
    float: safe_text | st.booleans() | st.lists(st.integers(), max_size=2)
    | st.dictionaries(names, st.integers(), max_size=2),
    bool: safe_text | st.integers() | st.lists(st.booleans(), max_size=2),
    dict: safe_text | st.integers() | st.lists(st.integers(), max_size=2),
    list: safe_text | st.integers() | st.dictionaries(names, st.integers(), max_size=2),
}


def get(cfg: dict, dotted: str) -> dict:
    node = cfg
    for part in dotted.split("."):
        node = node[part]
    return node


def key_of(section: str, key: str) -> str:
    return f"{section}.{toml_key(key)}"


@st.composite
def mutation(draw, cfg: dict):
    """Break ``cfg`` in place in one way; return the key an error must name (and the keys that
    error hinges on)."""
    how = draw(st.sampled_from([
        "unknown_section", "unknown_key", "wrong_type", "out_of_range", "bad_choice",
        "missing_required", "bad_kind", "section_not_table", "unknown_connection",
        "bad_name", "admin_host", "bad_secret", "bad_consent", "bad_schedule", "bad_mapping",
        "integration_not_table", "same_source_and_destination",
    ]))
    if how == "unknown_section":
        name = draw(names.filter(lambda n: n not in cfg))
        cfg[name] = draw(st.dictionaries(names, toml_scalars, max_size=2))
        return toml_key(name)
    if how == "unknown_key":
        section = draw(st.sampled_from([*SECTIONS, "connections.crm"]))
        table = get(cfg, section)
        known = {o.name for o in SECTIONS.get(section, ())} | {"kind", "world", "webhook_secret"}
        key = draw(names.filter(lambda n: n not in known and n not in table))
        table[key] = draw(toml_values)
        return key_of(section, key)
    if how == "wrong_type":
        section = draw(st.sampled_from(sorted(SECTIONS)))
        option = draw(st.sampled_from([o for o in SECTIONS[section] if o.type in WRONG]))
        get(cfg, section)[option.name] = draw(WRONG[option.type])
        return key_of(section, option.name)
    if how == "out_of_range":
        section, name, value = draw(st.sampled_from([
            ("receiver", "port", 70000), ("receiver", "port", -1), ("admin", "port", 65536),
            ("receiver", "threads", 0), ("receiver", "threads", 257),
            ("receiver", "max_body_bytes", 0), ("daemon", "stop_timeout", -1.0),
            ("integrations.main", "page_size", 0), ("integrations.main", "page_size", 5001),
            ("integrations.main", "batch_size", 1001), ("integrations.main", "confirm_share", 1.5),
            ("integrations.main", "max_attempts", 0)]))
        get(cfg, section)[name] = value
        return key_of(section, name)
    if how == "bad_choice":
        key = draw(st.sampled_from(["log_level", "log_format"]))
        cfg["daemon"][key] = draw(safe_text.filter(
            lambda s: s not in ("debug", "info", "warning", "error", "auto", "json", "console")))
        return f"daemon.{key}"
    if how == "missing_required":
        section, key = draw(st.sampled_from([
            ("connections.crm", "kind"), ("connections.mkt", "kind"),
            ("integrations.main", "source"), ("integrations.main", "destination")]))
        del get(cfg, section)[key]
        return f"{section}.{key}"
    if how == "bad_kind":
        conn = draw(st.sampled_from(["crm", "mkt"]))
        cfg["connections"][conn]["kind"] = draw(safe_text.filter(
            lambda s: s not in REGISTRY.connectors) | WRONG[str])
        return f"connections.{conn}.kind"
    if how == "section_not_table":
        section = draw(st.sampled_from(["daemon", "receiver", "admin", "connections",
                                        "integrations"]))
        cfg[section] = draw(toml_scalars | st.lists(st.integers(), max_size=2))
        return section
    if how == "unknown_connection":
        role = draw(st.sampled_from(["source", "destination"]))
        name = draw(names.filter(lambda n: n not in cfg["connections"]))
        cfg["integrations"]["main"][role] = name
        # (a connection of that name added later, even an invalid one, answers for it)
        return f"integrations.main.{role}", {f"connections.{toml_key(name)}"}
    if how == "bad_name":
        section = draw(st.sampled_from(["connections", "integrations"]))
        name = draw(names.filter(lambda n: not re.match(r"^[A-Za-z0-9_-]+$", n)))
        cfg[section][name] = copy.deepcopy(cfg[section]["crm" if section == "connections"
                                                        else "main"])
        return f"{section}.{toml_key(name)}"
    if how == "admin_host":
        cfg["admin"]["host"] = draw(st.sampled_from(["0.0.0.0", "10.0.0.1", "example.com",
                                                     "::", "192.168.1.1"]) | names)
        assume(cfg["admin"]["host"] not in ("localhost",))
        return "admin.host"
    if how == "bad_secret":
        cfg["connections"]["crm"]["webhook_secret"] = draw(st.sampled_from([
            {"env": "SYNCD_RELIABILITY_UNSET"}, {"env": "1 bad name"}, {"file": ""},
            {"file": "/nonexistent/syncd/secret"}, {"env": "A", "file": "/x"}, {}, 5, [1],
            {"nope": "x"}]))
        return "connections.crm.webhook_secret"
    if how == "bad_consent":
        consent = cfg["integrations"]["main"]["consents"][0]
        what = draw(st.sampled_from(["channel", "missing", "unknown"]))
        if what == "channel":
            consent["channel"] = draw(st.sampled_from(["both", "fax", "email,sms", ["email",
                                                                                   "sms"]]))
            return "integrations.main.consents[0].channel"
        if what == "missing":
            key = draw(st.sampled_from(["label", "topic", "channel"]))
            del consent[key]
            return f"integrations.main.consents[0].{key}"
        consent["colour"] = "red"
        return "integrations.main.consents[0].colour"
    if how == "bad_schedule":
        sched = cfg["integrations"]["main"]["daily_creation"]
        what = draw(st.sampled_from(["at", "timezone", "days", "missing", "not_table"]))
        if what == "at":
            sched["at"] = draw(st.sampled_from(["25:00", "2:3", "noon", "12:60", ""]))
        elif what == "timezone":
            sched["timezone"] = draw(st.sampled_from(["Mars/Base", "amsterdam", "", "UTC+2",
                                                      "../../etc/passwd"]))
        elif what == "days":
            sched["days"] = draw(st.sampled_from([[], ["someday"], ["mon", "funday"]]))
        elif what == "missing":
            what = draw(st.sampled_from(["at", "timezone"]))
            del sched[what]
        else:
            cfg["integrations"]["main"]["daily_creation"] = "02:30"
            return "integrations.main.daily_creation"
        return f"integrations.main.daily_creation.{what}"
    if how == "bad_mapping":
        field = draw(names)
        cfg["integrations"]["main"]["fields"][field] = draw(
            st.integers() | st.booleans() | st.just("") | st.just("   ")
            | st.lists(st.integers(), max_size=1))
        return f"integrations.main.fields.{toml_key(field)}"
    if how == "integration_not_table":
        cfg["integrations"]["main"] = draw(toml_scalars)
        return "integrations.main"
    cfg["integrations"]["main"]["destination"] = cfg["integrations"]["main"]["source"]
    return "integrations.main.destination", {"integrations.main.source"}


@st.composite
def broken_config(draw) -> tuple[dict, list[str]]:
    """A config broken in one to three ways, and the keys errors must name."""
    cfg = copy.deepcopy(BASE)
    expected: list[tuple[str, set[str]]] = []
    for _ in range(draw(st.integers(1, 3))):
        try:
            got = draw(mutation(cfg))
        except (KeyError, TypeError, IndexError, AttributeError):
            assume(False)  # an earlier mutation took away the spot this one breaks
        key, depends = got if isinstance(got, tuple) else (got, set())
        # a later change of the same key, or of one an earlier problem hinged on, replaces it
        expected = [(k, d) for k, d in expected if k != key and key not in d]
        expected.append((key, depends))
    keys = [k for k, _ in expected]
    return cfg, [k for k in keys if not masked(k, keys)]


def masked(key: str, keys: list[str]) -> bool:
    """Whether another problem hides ``key``: a broken parent (a section that is not a table
    is not looked into) or a connection whose kind is missing or unknown (its options cannot
    be checked without its connector)."""
    for other in keys:
        if other == key:
            continue
        if key.startswith((other + ".", other + "[")):
            return True
        if other.endswith(".kind") and key.startswith(other[:-len("kind")]):
            return True
    return False


def names_key(errors: list[str], path: str, key: str) -> bool:
    for line in errors:
        where = located(line, path)
        if where == key or where.startswith((key + ".", key + "[")):
            return True
    return False


def write_config(path, cfg: dict) -> None:
    path.write_text(tomli_w.dumps(cfg), encoding="utf-8")


@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
@given(case=broken_config())
def test_structurally_wrong_configs_name_the_broken_key(tmp_path, case):
    cfg, expected = case
    path = tmp_path / "syncd.toml"
    write_config(path, cfg)
    errors = check(str(path))
    assert errors, f"no error for a config broken at {expected}"
    for line in errors:
        located(line, str(path))
    assert expected, "the last mutation is never masked"
    for key in expected:
        assert names_key(errors, str(path), key), (key, expected, errors)


# -- what once crashed check(): reported like any other problem ------------------------------------

def test_a_secret_file_path_with_a_nul_is_reported(tmp_path):
    cfg = copy.deepcopy(BASE)
    cfg["connections"]["crm"]["webhook_secret"] = {"file": "secret\x00file"}
    path = tmp_path / "syncd.toml"
    write_config(path, cfg)
    assert names_key(check(str(path)), str(path), "connections.crm.webhook_secret")


def test_a_home_relative_path_with_a_nul_is_reported(tmp_path):
    cfg = copy.deepcopy(BASE)
    cfg["admin"]["token_file"] = "~\x00/token"
    path = tmp_path / "syncd.toml"
    write_config(path, cfg)
    assert names_key(check(str(path)), str(path), "admin.token_file")


@pytest.mark.parametrize("opening,closing", [("[", "]"), ("{a=", "}")])
def test_deeply_nested_toml_is_reported(tmp_path, opening, closing):
    path = tmp_path / "syncd.toml"
    path.write_text(f"x = {opening * 2000}1{closing * 2000}\n" if opening == "{a=" else
                    f"x = {opening * 2000}{closing * 2000}\n")
    errors = check(str(path))
    assert errors and all(located(line, str(path)) for line in errors)


# -- reloads onto a broken config -----------------------------------------------------------------

broken_text = mutated_text().filter(lambda t: not toml_ok(t))


def test_a_reload_onto_a_broken_config_keeps_the_running_one(running):
    r = running
    daemon = r.daemon
    good_text = r.config_path.read_text()
    old_config, old_routes = daemon.config, daemon.receiver_app.routes
    seen = {"n": 0, "text": 0, "structure": 0}

    @settings(max_examples=36, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=st.one_of(broken_text.map(lambda t: ("text", t)),
                          broken_config().map(lambda c: ("structure", c))))
    def reload_broken(case):
        kind, value = case
        if kind == "text":
            r.config_path.write_text(value, encoding="utf-8")
        else:
            write_config(r.config_path, value[0])
            assume(config_mod.check(str(r.config_path), daemon.registry, environ={}))
        result = daemon.reload()
        assert result["ok"] is False and result["errors"], result
        assert daemon.config is old_config
        assert daemon.receiver_app.routes is old_routes
        assert daemon.reload_errors == result["errors"]
        seen["n"] += 1
        seen[kind] += 1
        # and it still applies webhooks
        value_ = f"after bad reload {seen['n']}"
        r.world.update("p01", FirstName=value_)
        resp = r.send(["p01"])
        assert resp.status_code == 200, resp.text
        assert wait_for(lambda: r.applied("p01", value_), timeout=10)

    reload_broken()
    assert seen["n"] >= 24 and seen["text"] and seen["structure"], seen

    # the good config still reloads afterwards
    r.config_path.write_text(good_text)
    assert daemon.reload()["ok"] is True
    assert daemon.reload_errors == []
