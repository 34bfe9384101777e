"""What ``syncd sandbox --once`` checks: the destination against each source under its
integration's rules (:func:`compare`), and the consent scenario run for each source
(:func:`consent_scenario`): an unsubscribe in the destination arriving in the source, a
label or consent type set in the source arriving as an opt-in, a selection becoming a tag.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from typing import cast

from syncd.config.model import Condition
from syncd.connectors.capabilities import RecordReader
from syncd.connectors.connector import Connector
from syncd.engine.rules import Rules, expected_view, matches, to_profile
from syncd.records import Event

#: The integration of the sandbox's first source (tests build configs around it).
INTEGRATION = "sandbox"


def wait(predicate, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def _consent_problems(rules: Rules, record, consents_of, tags_of) -> list[str]:
    """Consents opted in exactly where the source shows the label (opt-outs made in the
    destination were written back), tags set exactly where it shows the selection."""
    problems = []
    if consents_of is not None and rules.consents:
        held = consents_of(record.id)
        for m in rules.consents:
            state = next((v for (topic, channel), v in held.items()
                          if topic == m.topic and channel.endswith(m.channel)), None)
            want = m.label in record.labels
            if (state == "opt-in") != want:
                problems.append(f"{record.id}: consent {m.topic} is {state or 'absent'}, "
                                f"the label {m.label!r} is {'set' if want else 'not set'}")
    if tags_of is not None and rules.selections:
        tags = tags_of(record.id)
        for selection, tag in rules.selections.items():
            if bool(tags.get(tag)) != (selection in record.selections):
                problems.append(f"{record.id}: tag {tag} is {bool(tags.get(tag))}, selection "
                                f"{selection!r} says {selection in record.selections}")
    return problems


def compare(daemon, src_cls: type[Connector], dst_cls: type[Connector], source_options: dict,
            snapshot: dict[str, dict], consents_of=None, tags_of=None, *,
            integration_name: str = INTEGRATION, others: Collection[str] = ()) -> list[str]:
    """Differences between the destination and the source under the rules (empty: equal).

    Every record that matches the conditions must have a profile equal to its mapping; a
    profile of a record that does not match now is allowed only if syncd synced it while it
    matched (seed 001: profiles are not deleted when a contact stops matching). ``others``:
    the destination's profiles that other integrations (other sources) wrote."""
    integration = daemon.config.integrations[integration_name]
    rules = Rules.from_integration(integration, dst_cls.canonical_attribute)
    reader = src_cls("compare", source_options)
    reader.start()
    problems: list[str] = []
    seen: set[str] = set()
    try:
        cursor = None
        while True:
            page = cast(RecordReader, reader).read_page(cursor, 500)  # a source: it reads
            for record in page.records:
                seen.add(record.id)
                actual = snapshot.get(record.id)
                if matches(rules.conditions, record):
                    want = expected_view(to_profile(rules, record), dst_cls.email_attribute,
                                         dst_cls.id_attribute)
                    problems.extend(_consent_problems(rules, record, consents_of, tags_of))
                    if actual is None:
                        problems.append(f"{record.id}: missing in the destination")
                    elif actual != want:
                        diff = {k: (actual.get(k), want.get(k))
                                for k in set(actual) | set(want) if actual.get(k) != want.get(k)}
                        problems.append(f"{record.id}: differs (have, want): {diff}")
                elif actual is not None and not daemon.store.links(integration_name,
                                                                   [record.id]):
                    problems.append(f"{record.id}: in the destination but never matched")
            cursor = page.cursor
            if cursor is None:
                break
    finally:
        reader.stop()
    for key in set(snapshot) - seen - set(others):
        problems.append(f"{key}: in the destination but not in the source")
    return problems


def pick(reader, predicate):
    cursor = None
    while True:
        page = reader.read_page(cursor, 500)
        for record in page.records:
            if predicate(record):
                return record
        cursor = page.cursor
        if cursor is None:
            return None


def consent_scenario(console, daemon, src_cls, source_options, dst_emu, rules,
                     integration_name: str = INTEGRATION) -> None:
    """An unsubscribe in the destination arriving in the source; a label set in the source
    arriving as an opt-in; a selection becoming a tag. Each change is made as a user would:
    the unsubscribe in the destination, the labels through the source's API."""
    consent = rules["consents"][0]
    label, topic = consent["label"], consent["topic"]
    conditions = [Condition(k, v) for k, v in rules.get("conditions", {}).items()]
    user = src_cls("sandbox-user", source_options)  # a CRM user editing through the API
    user.start()
    coordinator = daemon.supervisor.coordinator(integration_name)
    try:
        def fetch(record_id):
            return user.read_records([Event(record_id)])[0]

        opted_in = pick(user, lambda r: label in r.labels and matches(conditions, r))
        if opted_in is not None:
            dst_emu.unsubscribe(opted_in.id, topic)

            def written_back() -> bool:
                # what the next scheduled poll would do, now (an event recorded in the very
                # millisecond a poll ends comes with the following one)
                coordinator.run_job("consent_changes", {}).get(timeout=300)
                return label not in fetch(opted_in.id).labels

            ok = wait(written_back, 30, interval=0.2)
            console.print(f"    - {opted_in.id} unsubscribed from {topic} in the destination: "
                          + ("the label " + repr(label) + " is gone in the source" if ok
                             else "[red]not written back[/red]"))
        without = pick(user, lambda r: label not in r.labels and matches(conditions, r)
                        and r.id != getattr(opted_in, "id", None))
        if without is not None:
            user.write_consents(without.id, {label: True})
            ok = wait(lambda: "opt-in" in {v for (t, _), v in dst_emu.consents(without.id)
                                            .items() if t == topic}, 30)
            console.print(f"    - label {label!r} set on {without.id} in the source: "
                          + ("opted in to " + topic if ok else "[red]not arrived[/red]"))
        selection, tag = next(iter(rules.get("selections", {}).items()), (None, None))
        if selection:
            outside = pick(user, lambda r: selection not in r.selections
                            and matches(conditions, r))
            if outside is not None:
                user.write_consents(outside.id, {selection: True})
                ok = wait(lambda: bool(dst_emu.tags(outside.id).get(tag)), 30)
                console.print(f"    - {outside.id} joined the selection {selection!r}: "
                              + (f"tagged {tag!r}" if ok else "[red]not tagged[/red]"))
        wait(lambda: daemon.store.pending_count(integration_name) == 0, 60)
    finally:
        user.stop()
