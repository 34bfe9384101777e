"""The ``[integrations.NAME]`` sections: conditions, mappings, consents, overviews, schedules,
and the capabilities their settings need of the two connections."""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Mapping
from functools import cache
from typing import Any

from syncd.config.model import (
    Condition,
    ConsentMapping,
    IntegrationConfig,
    Overview,
    Schedule,
)
from syncd.config.needs import required
from syncd.config.problems import Problems, _names
from syncd.config.sections import (
    CHANNELS,
    CONSENT_OPTIONS,
    DAYS,
    INTEGRATION_OPTIONS,
    OVERVIEW_OPTIONS,
    RESPONSE_EVENT_TYPES,
    SCHEDULE_EXAMPLE,
    SCHEDULE_OPTIONS,
    did_you_mean,
    kind_of,
    shown,
    toml_key,
    validate_options,
)

_HHMM = re.compile(r"^(\d{1,2}):(\d{2})$")


def _integrations(raw, classes, problems, base_dir, environ) -> dict[str, IntegrationConfig]:
    declared = set(raw["connections"]) if isinstance(raw.get("connections"), dict) else set()
    out = {}
    for name, table in _names("integrations", raw, problems).items():
        prefix = f"integrations.{name}"
        before = problems.count()
        table, bad = _schedule_tables(table, "daily_creation")
        v = validate_options(table, INTEGRATION_OPTIONS, prefix, problems, base_dir=base_dir,
                             environ=environ)
        for key, value in bad.items():
            _schedule(value, f"{prefix}.{key}", problems, base_dir, environ)
        same = v.get("source") is not None and v.get("source") == v.get("destination")
        if same:
            problems.add(f"{prefix}.destination", "is the same connection as the source",
                         "name another connection")
        for role in ("source", "destination"):
            conn = v.get(role)
            if conn is None or (same and role == "destination"):
                continue
            if conn not in declared:
                guess = did_you_mean(conn, declared)
                known = ", ".join(sorted(declared)) or "none"
                problems.add(f"{prefix}.{role}", f"names no connection: {shown(conn)} is not "
                             f"defined (connections: {known})",
                             f'did you mean `{role} = "{guess}"`?' if guess else
                             f"add a [connections.{conn}] section, or name a defined connection")
        conditions = _conditions(v.get("conditions", {}), prefix, problems)
        fields = _str_table(v.get("fields", {}), f"{prefix}.fields", "attribute", problems)
        selections = _str_table(v.get("selections", {}), f"{prefix}.selections", "tag", problems)
        consents = _consents(v.get("consents", []), prefix, problems, base_dir, environ)
        daily = v.get("daily_creation")
        if daily is not None:
            daily = _schedule(daily, f"{prefix}.daily_creation", problems, base_dir, environ)
        overviews = _overviews(v.get("overviews", []), prefix, problems, base_dir, environ)
        events = tuple(v.get("response_events") or ())
        for i, kind in enumerate(events):
            if kind not in RESPONSE_EVENT_TYPES:
                guess = did_you_mean(kind, RESPONSE_EVENT_TYPES)
                problems.add(f"{prefix}.response_events[{i}]", f"unknown event type {shown(kind)}",
                             f'did you mean "{guess}"?' if guess else
                             f"use one of {', '.join(RESPONSE_EVENT_TYPES)}")
        if problems.count() == before:
            v.update(conditions=conditions, fields=fields, selections=selections,
                     consents=consents, daily_creation=daily, overviews=overviews,
                     response_events=events)
            integration = IntegrationConfig(name=name, **v)
            _capability_problems(integration, classes, prefix, problems)
            if problems.count() == before:
                out[name] = integration
    return out


def _capability_problems(integration: IntegrationConfig, classes: dict, prefix: str,
                         problems: Problems) -> None:
    """Every capability the integration's settings need, checked against its connections'
    connectors: each problem names the setting, the connection and what it lacks."""
    for need in required(integration):
        conn = getattr(integration, need.role)
        cls = classes.get(conn)
        if cls is None or need.capability in cls.capabilities:
            continue
        cap = need.capability.value
        if need.setting == need.role:
            problems.add(f"{prefix}.{need.role}",
                         f"connection `{conn}` (kind {cls.kind}) cannot be a {need.role}: "
                         f"its connector lacks the capability `{cap}`",
                         f"name a connection whose connector has `{cap}`")
        else:
            problems.add(f"{prefix}.{need.setting}",
                         f"needs the capability `{cap}` of the {need.role}, and connection "
                         f"`{conn}` (kind {cls.kind}) lacks it",
                         f"remove `{need.setting}`, or use a {need.role} whose connector has "
                         f"`{cap}`")


def _conditions(table: dict, prefix: str, problems: Problems) -> tuple[Condition, ...]:
    out = []
    for field, value in table.items():
        key = f"{prefix}.conditions.{toml_key(field)}"
        if not field.strip():
            problems.add(key, "a condition needs a field path", 'write `"Field.Path" = "value"`')
        elif isinstance(value, dict | list):
            problems.add(key, "a condition's value must be a string, number or boolean",
                         f'write `{toml_key(field)} = "value"`; several conditions all must hold')
        else:
            out.append(Condition(field=field, value=value))
    return tuple(out)


def _str_table(table: dict, prefix: str, what: str, problems: Problems) -> dict[str, str]:
    out: dict[str, str] = {}
    seen: dict[str, str] = {}
    for source, target in table.items():
        key = f"{prefix}.{toml_key(source)}"
        if not isinstance(target, str) or not target.strip():
            problems.add(key, f"must be the name of a destination {what} (a string)",
                         f'write `{toml_key(source)} = "{what}"`')
            continue
        if what == "attribute" and target in seen:
            problems.add(key, f"maps to attribute {shown(target)} like "
                         f"{shown(seen[target])} does", "map each attribute from one field")
            continue
        seen[target] = source
        out[source] = target
    return out


def _consents(items: list, prefix: str, problems: Problems, base_dir: str,
              environ: Mapping[str, str]) -> tuple[ConsentMapping, ...]:
    out = []
    for i, item in enumerate(items):
        key = f"{prefix}.consents[{i}]"
        channel = item.get("channel")
        both = (isinstance(channel, list) and len(channel) > 1) or (
            isinstance(channel, str) and channel not in CHANNELS
            and (channel.strip().lower() in ("both", "all")
                 or all(c in channel.lower() for c in CHANNELS)))
        if both:
            label = item.get("label", "...")
            topic = item.get("topic", "...")
            two = " and ".join(f"[[{prefix}.consents]] label = {shown(label)}, topic = "
                               f"{shown(topic)}, channel = \"{c}\"" for c in CHANNELS)
            problems.add(f"{key}.channel", "a consent mapping has exactly one channel, "
                         f"\"email\" or \"sms\", got {shown(channel)}",
                         f"write two mappings, one per channel: {two}")
            item = {k: v for k, v in item.items() if k != "channel"}
            item["channel"] = CHANNELS[0]  # reported above; check the rest of the mapping
        if isinstance(channel, list) and len(channel) == 1 and channel[0] in CHANNELS:
            problems.add(f"{key}.channel", "must be a string, not an array",
                         f'write `channel = "{channel[0]}"`')
            item = {**item, "channel": channel[0]}
        v = validate_options(item, CONSENT_OPTIONS, key, problems, base_dir=base_dir,
                             environ=environ)
        if len(v) == len(CONSENT_OPTIONS):
            out.append(ConsentMapping(**v))
    return tuple(out)


def _overviews(items: list, prefix: str, problems: Problems, base_dir: str,
               environ: Mapping[str, str]) -> tuple[Overview, ...]:
    out: list[Overview] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        key = f"{prefix}.overviews[{i}]"
        item, bad = _schedule_tables(item, "schedule")
        v = validate_options(item, OVERVIEW_OPTIONS, key, problems, base_dir=base_dir,
                             environ=environ)
        for leaf, value in bad.items():
            _schedule(value, f"{key}.{leaf}", problems, base_dir, environ)
        name, tag = v.get("name"), v.get("tag")
        for what, value in (("name", name), ("tag", tag)):
            if isinstance(value, str) and not value.strip():
                problems.add(f"{key}.{what}", "must not be empty",
                             f'write `{what} = "..."`' if what == "tag" else
                             "write the overview's name as the CRM shows it")
        if isinstance(name, str) and name in seen:
            problems.add(f"{key}.name", f"overview {shown(name)} is already configured in "
                         f"overviews[{seen[name]}]", "configure each overview once")
        elif isinstance(name, str):
            seen[name] = i
        schedule = v.get("schedule")
        if schedule is not None:
            schedule = _schedule(schedule, f"{key}.schedule", problems, base_dir, environ)
        if name and tag and name.strip() and tag.strip():
            out.append(Overview(name=name, tag=tag, schedule=schedule))
    return tuple(out)


def _schedule_tables(table: dict, *keys: str) -> tuple[dict, dict]:
    """``table`` without the schedule keys whose value is not a table, and those apart (for
    :func:`_schedule` to report with a schedule's example rather than a generic one)."""
    bad = {k: table[k] for k in keys if k in table and not isinstance(table[k], dict)}
    return {k: v for k, v in table.items() if k not in bad}, bad


def _schedule(value: Any, key: str, problems: Problems, base_dir: str,
              environ: Mapping[str, str]) -> Schedule | None:
    """A :class:`Schedule` from ``{ at = "HH:MM", timezone = "Area/City", days = [...] }``."""
    leaf = key.rsplit(".", 1)[-1]
    fix = f"write it like `{leaf} = {SCHEDULE_EXAMPLE}`"
    if not isinstance(value, dict):
        problems.add(key, f"must be a table {{ at = \"HH:MM\", timezone = \"Area/City\" }}, "
                     f"got {kind_of(value)}", fix)
        return None
    missing = [n for n in ("at", "timezone") if n not in value]
    for name in missing:
        why = ("a daily time means nothing without its time zone (an IANA name)"
               if name == "timezone" else "the local time, 24-hour \"HH:MM\"")
        problems.add(f"{key}.{name}", f"is required: {why}", fix)
    before = problems.count()
    v = validate_options(value, [o for o in SCHEDULE_OPTIONS if o.name not in missing], key,
                         problems, base_dir=base_dir, environ=environ, extra_keys=missing)
    at, tz, days = v.get("at"), v.get("timezone"), v.get("days")
    if at is not None:
        match = _HHMM.match(at.strip())
        if not match or int(match[1]) > 23 or int(match[2]) > 59:
            problems.add(f"{key}.at", f"must be a 24-hour time \"HH:MM\", got {shown(at)}",
                         'write it like `at = "02:30"` (or "14:30" for 2:30 PM)')
        else:
            at = f"{int(match[1]):02d}:{match[2]}"
    if tz is not None:
        _check_timezone(tz, f"{key}.timezone", problems)
    days = _days(days, f"{key}.days", problems) if "days" in value and days is not None else ()
    if missing or problems.count() > before or at is None or tz is None:
        return None
    return Schedule(at=at, timezone=tz, days=days)


def _check_timezone(name: str, key: str, problems: Problems) -> None:
    try:
        zoneinfo.ZoneInfo(name)
        return
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        pass
    zones = _timezones()
    guess = next((z for z in sorted(zones) if z.rsplit("/", 1)[-1].lower()
                  == name.strip().replace(" ", "_").lower()), None) or did_you_mean(name, zones)
    hint = f'did you mean `timezone = "{guess}"`? ' if guess else ""
    problems.add(key, f"is not a known IANA time zone: {shown(name)}",
                 f'{hint}write an IANA name like `timezone = "Europe/Amsterdam"` '
                 "(`timedatectl list-timezones` lists them)")


@cache
def _timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _days(days: list, key: str, problems: Problems) -> tuple[str, ...]:
    if not days:
        problems.add(key, "lists no day", "leave `days` out to run every day")
        return ()
    full = {"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"}
    chosen = set()
    for i, day in enumerate(days):
        word = day.strip().lower()
        if word in DAYS or word in full:
            chosen.add(word[:3])
            continue
        guess = did_you_mean(word, DAYS) or did_you_mean(word, sorted(full))
        problems.add(f"{key}[{i}]", f"is not a weekday: {shown(day)}",
                     (f'did you mean "{guess[:3]}"? ' if guess else "")
                     + 'write days like `days = ["mon", "wed", "fri"]`')
    return tuple(d for d in DAYS if d in chosen)
