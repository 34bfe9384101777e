"""The in-memory connector: a source *and* destination, the fake to test the core with (no
HTTP). Connections of kind ``memory`` that name the same ``world`` share data."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from syncd.config.schema import Option, Secret
from syncd.connectors.connector import Capability, Connector
from syncd.exceptions import RemoteError, WebhookRejected
from syncd.records import (
    ConsentChange,
    Event,
    Page,
    Profile,
    ProfileState,
    Record,
    WriteResult,
)


@dataclass
class World:
    """The data behind memory connections of one ``world`` name."""

    records: dict[str, Record] = field(default_factory=dict)
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    consents: dict[str, dict[tuple[str, str], bool]] = field(default_factory=dict)
    tags: dict[str, dict[str, bool]] = field(default_factory=dict)
    fail_keys: dict[str, str] = field(default_factory=dict)  # key -> reason (permanent)
    #: Keys whose writes are applied, then answered failed (retryable): a destination whose
    #: answer was lost after it applied the write (or a process killed before it saw it).
    lose_answers: set[str] = field(default_factory=set)
    #: Ids that list answers (read_page, read_records) leave out although they exist: a
    #: direct read (read_record) still finds them.
    unlisted: set[str] = field(default_factory=set)
    #: Ids whose read-back (read_records) the source refuses for good (a 400 naming the
    #: whole request, as an OData filter with one bad key is refused).
    poisoned: set[str] = field(default_factory=set)
    record_reads: int = 0  # read_records calls
    #: How every read of the source serves labels: "ok"; "fail" (a retryable error, as a
    #: label read that times out); "empty" (no labels at all, as an unexpanded label link);
    #: "malformed" (labels under names no mapping knows, as a renamed name field).
    label_reads: str = "ok"
    direct_reads: list[str] = field(default_factory=list)
    #: When set, read_page waits for it between pages (to hold a full sync mid-way).
    page_gate: threading.Event | None = None
    consent_log: list[ConsentChange] = field(default_factory=list)
    #: The first consent read (cursor None) returns every change since the world began,
    #: instead of "from now on" as the capability's contract says (for tests that model
    #: an account whose every opt-out reaches syncd, whenever it polls first).
    consents_from_start: bool = False
    groups: dict[str, set[str]] = field(default_factory=dict)  # overviews: name -> ids
    pages_read: int = 0
    bulk_calls: list[int] = field(default_factory=list)  # sizes of bulk writes
    writes: int = 0
    #: Every consent-related change in order, to judge a run's history (not only its end):
    #: ("optout", key, topic, channel, at), ("label", record_id, label, on, at) when a
    #: label is set or removed, ("consent", key, topic, channel, opted_in) when a profile
    #: write sets a consent.
    #: ("read", n): a read of consent changes returned ``consent_log[:n]``.
    history: list[tuple] = field(default_factory=list)
    written_back: list[str] = field(default_factory=list)  # ids given write_consents
    profile_reads: list[str] = field(default_factory=list)  # keys given read_profiles
    #: Called (outside the lock) with the cursor of each page read, and with the profiles
    #: of each write before it is applied: to pin or observe an interleaving in a test.
    after_read: Any = None
    before_write: Any = None
    lock: threading.RLock = field(default_factory=threading.RLock)

    def put(self, record: Record) -> None:
        with self.lock:
            self.records[record.id] = record

    def unsubscribe(self, key: str, topic: str, channel: str = "email",
                    at: str | None = None) -> None:
        """A recipient unsubscribes in the destination."""
        at = at or dt.datetime.now(dt.UTC).isoformat()
        with self.lock:
            self.consents.setdefault(key, {})[(topic, channel)] = False
            self.consent_log.append(ConsentChange(key, topic, channel, False, at))
            self.history.append(("optout", key, topic, channel, at))

    def set_label(self, record_id: str, label: str, on: bool, at: str | None = None) -> Record:
        """A user sets or removes a label on a record in the source."""
        at = at or dt.datetime.now(dt.UTC).isoformat()
        with self.lock:
            old = self.records[record_id]
            labels = set(old.labels)
            times = dict(old.label_times)
            if on and label not in labels:
                labels.add(label)
                times[label] = at
                self.history.append(("label", record_id, label, True, at))
            elif not on and label in labels:
                labels.discard(label)
                times.pop(label, None)
                self.history.append(("label", record_id, label, False, at))
            new = replace(old, labels=frozenset(labels), label_times=times)
            self.records[record_id] = new
            return new

    def update(self, record_id: str, **fields: Any) -> Record:
        with self.lock:
            old = self.records[record_id]
            new = replace(old, fields={**old.fields, **fields},
                          email=fields.get("email", old.email))
            self.records[record_id] = new
            return new


WORLDS: dict[str, World] = {}


def world(name: str = "default") -> World:
    return WORLDS.setdefault(name, World())


def sign(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _check_label_reads(w: World) -> None:
    if w.label_reads == "fail":
        raise RemoteError("503: the label read timed out", status=503, retryable=True)


def _labels_as_read(w: World, record: Record) -> Record:
    if w.label_reads == "empty" and not record.deleted:
        return replace(record, labels=frozenset(), label_times={})
    if w.label_reads == "malformed" and not record.deleted:
        return replace(record, labels=frozenset(f"?{label}?" for label in record.labels),
                       label_times={})
    return record


class MemoryConnector(Connector):
    kind: ClassVar[str] = "memory"
    description = "in-memory source and destination, for tests"
    capabilities = frozenset({Capability.READ_RECORDS, Capability.PARSE_WEBHOOKS,
                              Capability.WRITE_PROFILES, Capability.DELETE_PROFILES,
                              Capability.READ_CONSENT_CHANGES, Capability.WRITE_CONSENTS,
                              Capability.READ_GROUPS, Capability.BULK_WRITE,
                              Capability.READ_RECORD, Capability.READ_PROFILES})
    options = (
        Option("world", str, "default", "the name of the shared in-memory data"),
        Option("webhook_secret", Secret, None, "HMAC-SHA256 key of X-Memory-Signature"),
    )
    email_attribute = "email"
    id_attribute = "crm_id"

    @property
    def world(self) -> World:
        return world(self.config.get("world", "default"))

    def read_page(self, cursor: str | None, page_size: int, since: str | None = None) -> Page:
        w = self.world
        gate = w.page_gate
        if gate is not None and cursor is not None:
            gate.wait(30)
        _check_label_reads(w)
        with w.lock:
            ids = sorted(i for i, r in w.records.items()
                         if (since is None or (r.modified_at or "") >= since)
                         and i not in w.unlisted)
            start = int(cursor or 0)
            chunk = [_labels_as_read(w, w.records[i]) for i in ids[start:start + page_size]]
            w.pages_read += 1
        if w.after_read is not None:
            w.after_read(cursor)
        nxt = start + page_size
        return Page(tuple(chunk), str(nxt) if nxt < len(ids) else None, total=len(ids))

    def read_records(self, events: list[Event]) -> list[Record]:
        w = self.world
        with w.lock:
            w.record_reads += 1
            bad = sorted(w.poisoned & {e.record_id for e in events})
            if bad:
                raise RemoteError(f"400: the source refused the read of {len(events)} records",
                                  status=400, retryable=False)
            _check_label_reads(w)
            return [_labels_as_read(w, (None if e.record_id in w.unlisted
                                        else w.records.get(e.record_id))
                                    or Record(e.record_id, deleted=True)) for e in events]

    def read_record(self, record_id: str) -> Record | None:
        w = self.world
        with w.lock:
            w.direct_reads.append(record_id)
            _check_label_reads(w)
            record = w.records.get(record_id)
            return None if record is None else _labels_as_read(w, record)

    @classmethod
    def webhook_parser(cls, name: str, config: Mapping[str, Any]):
        secret = config.get("webhook_secret")

        def parse(headers: Mapping[str, str], body: bytes) -> list[Event]:
            given = {k.lower(): v for k, v in headers.items()}.get("x-memory-signature", "")
            if secret is None or not hmac.compare_digest(given, sign(secret.reveal(), body)):
                raise WebhookRejected(401, "bad or missing X-Memory-Signature")
            try:
                data = json.loads(body)
                return [Event(str(i)) for i in data["ids"]]
            except (ValueError, KeyError, TypeError, RecursionError):
                raise WebhookRejected(400, "body must be JSON {\"ids\": [...]}") from None

        return parse

    def write_profiles(self, profiles: list[Profile], known: set[str]) -> list[WriteResult]:
        w = self.world
        out = []
        if w.before_write is not None:
            w.before_write(list(profiles))
        with w.lock:
            for p in profiles:
                w.writes += 1
                if p.key in w.fail_keys:
                    out.append(WriteResult(p.key, "failed", w.fail_keys[p.key]))
                    continue
                existed = p.key in w.profiles
                attrs = dict(w.profiles.get(p.key, {}))
                attrs.update({"email": p.email, "crm_id": p.key})
                for k, v in p.attributes.items():
                    if v is None or v == "":
                        attrs.pop(k, None)
                    else:
                        attrs[k] = v
                if not attrs.get("email"):
                    attrs.pop("email", None)
                w.profiles[p.key] = attrs
                for c in p.consents:
                    w.consents.setdefault(p.key, {})[(c.topic, c.channel)] = c.opted_in
                    w.history.append(("consent", p.key, c.topic, c.channel, c.opted_in))
                if p.tags:
                    w.tags.setdefault(p.key, {}).update(p.tags)
                if p.key in w.lose_answers:
                    out.append(WriteResult(p.key, "failed", "answer lost after applying",
                                           retryable=True))
                    continue
                out.append(WriteResult(p.key, "updated" if existed else "created"))
        return out

    def read_profiles(self, keys: list[str]) -> list[ProfileState]:
        """What the world holds for each key: the attributes, consents and tags set on it
        (a cleared attribute is absent: unknown)."""
        w = self.world
        out = []
        with w.lock:
            w.profile_reads.extend(keys)
            for key in keys:
                attrs = w.profiles.get(key)
                if attrs is None:
                    out.append(ProfileState(key, found=False))
                    continue
                out.append(ProfileState(
                    key, found=True,
                    attributes={k: v for k, v in attrs.items() if k not in ("email", "crm_id")},
                    email=attrs.get("email"),
                    consents={f"{t}|{c}": on for (t, c), on in w.consents.get(key, {}).items()},
                    tags=dict(w.tags.get(key, {}))))
        return out

    def read_group(self, name: str) -> list[str]:
        with self.world.lock:
            return sorted(self.world.groups.get(name, ()))

    def read_consent_changes(self, cursor: str | None
                             ) -> tuple[list[ConsentChange], str | None]:
        w = self.world
        with w.lock:
            w.history.append(("read", len(w.consent_log)))
            if cursor is None and not w.consents_from_start:  # the first read: from now on
                return [], str(len(w.consent_log))
            return list(w.consent_log[int(cursor or 0):]), str(len(w.consent_log))

    def write_consents(self, record_id: str, labels: dict[str, bool]) -> WriteResult:
        w = self.world
        with w.lock:
            if record_id not in w.records:
                return WriteResult(record_id, "failed", "no such record")
            w.written_back.append(record_id)
            before = w.records[record_id].labels
            for label, on in labels.items():
                w.set_label(record_id, label, on)
            changed = w.records[record_id].labels != before
        return WriteResult(record_id, "updated" if changed else "unchanged")

    def bulk_write(self, profiles: list[Profile]) -> list[WriteResult]:
        self.world.bulk_calls.append(len(profiles))
        return self.write_profiles(profiles, set())

    def delete_profiles(self, keys: list[str]) -> list[WriteResult]:
        w = self.world
        with w.lock:
            for key in keys:
                w.profiles.pop(key, None)
        return [WriteResult(k, "deleted") for k in keys]
