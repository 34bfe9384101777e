"""The checks every config section (core or connector) goes through: one table against its
options (:func:`validate_options`), values, examples and "did you mean" texts."""

from __future__ import annotations

import difflib
import ipaddress
import json
import math
import os
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from syncd.config.schema import REQUIRED, Option, Secret
from syncd.config.secrets import resolve_secret

if TYPE_CHECKING:
    from syncd.config.problems import Problems

_BARE_KEY_RE = re.compile(r"^[A-Za-z0-9_-]+$")


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` names this machine's loopback: ``localhost`` or a loopback address.
    The daemon binds the admin endpoint only there, and the CLI sends its token only there."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# -- formatting ----------------------------------------------------------------------------

def toml_key(key: str) -> str:
    return key if _BARE_KEY_RE.match(key) else json.dumps(key)


def toml_value(value: Any) -> str:
    """``value`` written as TOML (for the examples in fixes)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        items = ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items())
        return "{ " + items + " }"
    return json.dumps(str(value))


def describe_type(option: Option) -> str:
    t = option.type
    if t is Secret:
        return 'a string, { env = "NAME" } or { file = "/path" }'
    if t is list and option.item_type is not None:
        return f"an array of {_TYPE_NAMES.get(option.item_type, 'values')}s"
    return _TYPE_NAMES_A.get(t, t.__name__)


_TYPE_NAMES = {str: "string", int: "integer", float: "number", bool: "boolean", dict: "table",
               list: "array"}
_TYPE_NAMES_A = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
                 dict: "a table", list: "an array"}


def kind_of(value: Any) -> str:
    """The TOML type of a value, for 'got ...' (never the value itself)."""
    for t, name in ((bool, "a boolean"), (int, "an integer"), (float, "a float"),
                    (str, "a string"), (list, "an array"), (dict, "a table")):
        if isinstance(value, t):
            return name
    return type(value).__name__


def shown(value: Any) -> str:
    """A non-secret value as shown in a message: TOML, cut short."""
    text = toml_value(value)
    return text if len(text) <= 60 else text[:57] + "..."


def example(option: Option, secret_env: str = "SYNCD_SECRET") -> Any:
    """A valid value of ``option``, for the example in a fix."""
    d = option.default
    if option.type is Secret:
        return {"env": secret_env}
    if d is not REQUIRED and d not in (None, "", [], {}) and not (
            option.choices and d not in option.choices):
        return d
    if option.choices:
        return option.choices[0]
    t = option.type
    if t is int:
        return int(option.minimum) if option.minimum is not None else 1
    if t is float:
        return float(option.minimum) if option.minimum is not None else 1.0
    if t is bool:
        return True
    if t is list:
        samples: dict[type, object] = {str: "...", int: 1, float: 1.0, bool: True}
        item = samples.get(option.item_type) if option.item_type is not None else None
        return [item] if item is not None else []
    if t is dict:
        return {"...": "..."}
    return "..."


def example_line(option: Option, secret_env: str = "SYNCD_SECRET") -> str:
    return f"{option.name} = {toml_value(example(option, secret_env))}"


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    candidates = list(candidates)
    match = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    if not match:
        lowered = {c.lower(): c for c in candidates}
        match = [lowered[m] for m in difflib.get_close_matches(word.lower(), list(lowered), n=1,
                                                               cutoff=0.6)]
    return match[0] if match else None


def unknown_key_fix(key: str, known: Iterable[str]) -> str:
    known = sorted(known)
    guess = did_you_mean(key, known)
    if guess:
        return f"did you mean `{guess}`?"
    return "remove it; known keys: " + (", ".join(known) if known else "none")


# -- validation ----------------------------------------------------------------------------

def validate_options(
    table: Mapping[str, Any],
    options: Iterable[Option],
    prefix: str,
    problems: Problems,
    *,
    base_dir: str,
    environ: Mapping[str, str],
    extra_keys: Iterable[str] = (),
) -> dict[str, Any]:
    """Check ``table`` against ``options``; return the values with defaults filled.

    ``extra_keys`` are keys the caller checks itself (e.g. ``kind``). A key whose value is
    wrong is left out of the result; the caller looks at ``problems`` before using it.
    """
    options = list(options)
    by_name = {o.name: o for o in options}
    extra = set(extra_keys)
    for key in table:
        if key not in by_name and key not in extra:
            problems.add(f"{prefix}.{toml_key(key)}", "unknown key",
                         unknown_key_fix(key, [*by_name, *extra]))
    values: dict[str, Any] = {}
    for option in options:
        key = f"{prefix}.{option.name}"
        owner = prefix.split(".")[1] if "." in prefix else prefix
        env_hint = re.sub(r"[^A-Z0-9]+", "_", f"SYNCD_{owner}_{option.name}".upper())
        if option.name not in table:
            if option.required:
                problems.add(key, f"is required ({describe_type(option)})",
                             f"add `{example_line(option, env_hint)}` to [{prefix}]")
            else:
                values[option.name] = option.default
            continue
        ok, value = check_value(table[option.name], option, key, problems, base_dir=base_dir,
                                environ=environ, env_hint=env_hint)
        if ok:
            values[option.name] = value
    return values


def check_value(value: Any, option: Option, key: str, problems: Problems, *, base_dir: str,
                environ: Mapping[str, str], env_hint: str = "SYNCD_SECRET") -> tuple[bool, Any]:
    """Check one value; return ``(ok, converted value)``."""
    t = option.type
    if t is Secret:
        secret = resolve_secret(value, key, problems, base_dir=base_dir, environ=environ,
                                env_hint=env_hint)
        return secret is not None, secret
    fix = f"write it like `{example_line(option)}`"
    if t is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not _is_type(value, t):  # a table or array may hold anything: show only scalars
        got = kind_of(value) + ("" if isinstance(value, dict | list) else f" {shown(value)}")
        problems.add(key, f"must be {describe_type(option)}, got {got}", fix)
        return False, None
    if t is list and option.item_type is not None:
        bad = [i for i, item in enumerate(value) if not _is_type(item, option.item_type)]
        for i in bad:
            problems.add(f"{key}[{i}]", f"must be a {_TYPE_NAMES.get(option.item_type)}, "
                                        f"got {kind_of(value[i])}", fix)
        if bad:
            return False, None
        value = list(value)
    if option.choices and value not in option.choices:
        guess = did_you_mean(str(value), [str(c) for c in option.choices])
        choices = ", ".join(toml_value(c) for c in option.choices)
        hint = f"did you mean {toml_value(guess)}? " if guess else ""
        better = toml_value(guess or option.choices[0])
        problems.add(key, f"must be one of {choices}, got {shown(value)}",
                     f"{hint}write it like `{option.name} = {better}`")
        return False, None
    if isinstance(value, float) and not math.isfinite(value):
        problems.add(key, f"must be a finite number, got {shown(value)}", fix)
        return False, None
    if isinstance(value, str) and "\x00" in value:
        problems.add(key, "must not contain a NUL character", fix)
        return False, None
    if isinstance(value, int | float) and not isinstance(value, bool):
        low, high = option.minimum, option.maximum
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = (f"at most {_num(high)}" if low is None
                      else f"at least {_num(low)}" if high is None
                      else f"between {_num(low)} and {_num(high)}")
            nearest: float | None = low if low is not None and value < low else high
            if nearest is not None and t in (int, float):
                nearest = t(nearest)
            problems.add(key, f"must be {bounds}, got {shown(value)}",
                         f"write it like `{option.name} = {toml_value(nearest)}`")
            return False, None
    return True, value


def _num(x: float | None) -> str:
    return str(int(x)) if x is not None and float(x).is_integer() else str(x)


def _is_type(value: Any, t: type) -> bool:
    if t is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if t is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if t is list:
        return isinstance(value, list)
    if t is dict:
        return isinstance(value, dict)
    return isinstance(value, t)


def resolve_path(path: str, base_dir: str) -> str:
    path = os.path.expanduser(path)
    return os.path.normpath(path if os.path.isabs(path) else os.path.join(base_dir, path))
