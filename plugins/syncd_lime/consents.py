"""Lime's consent add-on (limepkg-consent, apis.md 2.4): consents read strictly, and written.

A person's consents are ``consent`` objects (names: the ``consent_*`` options), each with a
consent type (``consenttype``, named by its ``title``) and ``approved`` (yes/no). The newest
consent per type wins (by its ``date``, then ``_timestamp``, then ``_id``); a type whose
newest consent is approved is a label of the record (``Record.labels``, the name consent
mappings use), with when that consent was given in ``Record.label_times`` (its date, or the
property ``consent_time_property`` names; ``none``: no time).

Strict reading: a consent whose ``approved`` is missing or not yes/no, or whose consent type
is unknown even after the types were read again, makes the record's consents unknown:
:class:`ConsentDataError`, which the connector turns into ``Record.error`` (the record fails,
retryable; nothing is written for it). Never "no consent". A consent without a consent type
cannot be attributed and is left out.

Writing (``write_consents``): consents are never deleted. An opt-out sets ``approved =
false`` on the newest consent of its type; an opt-in sets it true; a consent is created only
when the person has none of that type.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from structlog.typing import FilteringBoundLogger

from syncd.plugin import RemoteError, WriteResult, for_records

if TYPE_CHECKING:
    from syncd_lime.client import LimeClient

#: A page's persons whose id span is at most this many times their number have their
#: consents read with one min-/max- range query; others one query per person.
RANGE_DENSITY = 4


class ConsentDataError(Exception):
    """A person's consents came back incomplete or malformed: unknown, never "none"."""


class UnknownConsentType(Exception):
    """A consent type title the mapping uses is not in Lime."""


def _when(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(dt.UTC).isoformat().replace(
        "+00:00", "Z")


def relation_id(value: Any) -> int | None:
    if isinstance(value, Mapping):
        value = value.get("_id", value.get("id"))
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class Consents:
    """Mixed into the connector (which provides ``opts``, ``client``, ``log``, ``pool_map``,
    ``_types``/``_types_lock`` and ``_relation_ranges``)."""

    opts: dict[str, Any]
    client: LimeClient
    log: FilteringBoundLogger
    #: consent type id -> title (None until first read), when it was read, and its lock
    _types: dict[int, str] | None
    _types_read: float
    _types_lock: threading.Lock
    #: False once Lime refused min-/max- on a relation
    _relation_ranges: bool

    if TYPE_CHECKING:
        def pool_map(self, fn: Callable[[Any], Any], items: list[Any]) -> list[Any]: ...

        def person_id(self, key: str) -> int | None: ...

    TYPES_RETRY = 30.0

    # -- consent types -----------------------------------------------------------------------

    def consent_types(self, refresh: bool = False) -> dict[int, str]:
        """Consent type id -> title (read once, again when ``refresh``)."""
        with self._types_lock:
            if self._types is None or refresh:
                title = self.opts["consenttype_title_property"]
                self._types = {int(t["_id"]): str(t.get(title) or "")
                               for t in self.client.iterate(self.opts["consenttype_limetype"],
                                                            page_size=200)}
                self._types_read = time.monotonic()
            return dict(self._types)

    def _type_title(self, type_id: int) -> str | None:
        types = self.consent_types()
        if type_id not in types and time.monotonic() - self._types_read > self.TYPES_RETRY:
            types = self.consent_types(refresh=True)
        return types.get(type_id)

    def type_ids(self, titles: Iterable[str]) -> dict[str, int]:
        """Title -> id, exact, else case-insensitive when unambiguous; the types are read
        again once when a title is missing."""
        titles = list(titles)
        for refresh in (False, True):
            by_title: dict[str, list[int]] = {}
            for tid, title in self.consent_types(refresh=refresh).items():
                by_title.setdefault(title, []).append(tid)
            found: dict[str, int] = {}
            for name in titles:
                exact = by_title.get(name) or []
                folded = [i for t, ids in by_title.items() if t.casefold() == name.casefold()
                          for i in ids]
                pick = exact or (folded if len(folded) == 1 else [])
                if pick:
                    found[name] = min(pick)
            if len(found) == len(titles):
                return found
        missing = [t for t in titles if t not in found]
        raise UnknownConsentType(
            f"consent type{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))} "
            f"not found in Lime (fix: create it in Lime, or correct the consent mapping's "
            f"label)")

    # -- reading -----------------------------------------------------------------------------

    def consents_for(self, person_ids: list[int], key_of: Mapping[int, str] | None = None
                     ) -> dict[int, list[dict[str, Any]]]:
        """The consents of these persons, by person id (every person has an entry); the
        calls are marked for the persons' keys (``key_of``, for syncd explain)."""
        def keys(ids: list[int]) -> list[Any]:
            return [key_of.get(i, i) for i in ids] if key_of else list(ids)

        rel = self.opts["consent_person_relation"]
        kind = self.opts["consent_limetype"]
        out: dict[int, list[dict[str, Any]]] = {p: [] for p in person_ids}
        if not person_ids:
            return out
        low, high = min(person_ids), max(person_ids)
        if self._relation_ranges and len(person_ids) > 2 \
                and high - low + 1 <= RANGE_DENSITY * len(person_ids):
            try:
                with for_records(keys(person_ids)):  # one read for many (syncd explain)
                    rows = list(self.client.iterate(
                        kind, page_size=500, filters=[(f"min-{rel}", low),
                                                      (f"max-{rel}", high)]))
            except RemoteError as exc:  # min-/max- on a relation is an INFER (apis.md 2.2)
                if exc.status != 400:
                    raise
                self._relation_ranges = False
                self.log.info("lime.relation_ranges_refused", error=str(exc),
                              fallback="one consent list per person")
            else:
                for row in rows:
                    pid = relation_id(row.get(rel))
                    if pid in out:
                        out[pid].append(dict(row))
                return out

        def one(pid: int) -> list[dict[str, Any]]:
            with for_records(keys([pid])):
                return [dict(r) for r in self.client.iterate(kind, page_size=200,
                                                            filters=[(rel, pid)])]

        for pid, rows in zip(person_ids, self.pool_map(one, person_ids), strict=True):
            out[pid] = rows
        return out

    def newest_by_type(self, consents: list[dict[str, Any]]
                       ) -> dict[int, dict[str, Any]]:
        """Consent type id -> the newest consent of that type (consents without a type are
        left out)."""
        type_rel, date = self.opts["consent_type_relation"], self.opts["consent_date_property"]
        newest: dict[int, dict[str, Any]] = {}

        def key(c: Mapping[str, Any]) -> tuple:
            when = _when(c.get(date))
            stamp = _when(c.get("_timestamp"))
            return (when is not None, when.timestamp() if when else 0.0,
                    stamp.timestamp() if stamp else 0.0, relation_id(c.get("_id")) or 0)

        for consent in consents:
            tid = relation_id(consent.get(type_rel))
            if tid is None:
                continue
            if tid not in newest or key(consent) > key(newest[tid]):
                newest[tid] = consent
        return newest

    def consent_labels(self, consents: list[dict[str, Any]]
                       ) -> tuple[frozenset[str], dict[str, str]]:
        """The titles of the consent types whose newest consent is approved, and when each
        was given. :class:`ConsentDataError` when a consent cannot be read."""
        approved = self.opts["consent_approved_property"]
        date = self.opts.get("consent_time_property") or self.opts["consent_date_property"]
        labels: set[str] = set()
        times: dict[str, str] = {}
        for tid, consent in self.newest_by_type(consents).items():
            value = consent.get(approved)
            if not isinstance(value, bool):
                raise ConsentDataError(
                    f"consent {consent.get('_id')} came without a yes/no '{approved}' (got "
                    f"{type(value).__name__}): the person's consents are unknown (fix: check "
                    f"consent_approved_property against the consent limetype)")
            title = self._type_title(tid)
            if not title:
                raise ConsentDataError(
                    f"consent {consent.get('_id')} names consent type {tid}, which Lime does "
                    f"not list (or which has no '{self.opts['consenttype_title_property']}'): "
                    f"the person's consents are unknown")
            if value:
                labels.add(title)
                stamp = _iso(_when(consent.get(date))) if date != "none" else None
                if stamp:
                    times[title] = stamp
        return frozenset(labels), times

    # -- writing -----------------------------------------------------------------------------

    def write_consents(self, record_id: str, labels: dict[str, bool]) -> WriteResult:
        """Approve (True) or withdraw (False) the named consent types of person
        ``record_id``: the newest consent of the type is updated, or one is created when
        the person has none of it. Idempotent: ``unchanged`` when each already is so."""
        rid = str(record_id)
        if not labels:
            return WriteResult(rid, "unchanged")
        pid = self.person_id(rid)  # the key syncd gave the person (syncd_lime.keys)
        if pid is None:
            return WriteResult(rid, "failed", f"{rid!r} is not a person key of this Lime "
                               "connection", retryable=False)
        try:
            ids = self.type_ids(labels)
            with for_records([rid]):  # syncd explain shows these calls
                if self.client.get(self.opts["person_limetype"], pid) is None:
                    return WriteResult(rid, "failed", f"no person {rid} in Lime (deleted?)",
                                       retryable=False)
                newest = self.newest_by_type(self.consents_for([pid])[pid])
                changed = 0
                for title, on in labels.items():
                    changed += self._write_one(pid, ids[title], bool(on),
                                               newest.get(ids[title]))
        except UnknownConsentType as exc:
            return WriteResult(rid, "failed", str(exc), retryable=False)
        except RemoteError as exc:
            return WriteResult(rid, "failed", str(exc), retryable=exc.retryable)
        except Exception as exc:  # a bug or an odd answer: report it, may work next time
            self.log.exception("lime.write_consents_failed", record=rid)
            return WriteResult(rid, "failed", f"{type(exc).__name__}: {exc}", retryable=True)
        if changed:
            self.log.info("lime.consents_written", record=rid, changed=changed)
        return WriteResult(rid, "updated" if changed else "unchanged")

    def _write_one(self, pid: int, tid: int, on: bool, current: dict[str, Any] | None) -> int:
        approved = self.opts["consent_approved_property"]
        values: dict[str, Any] = {approved: on,
                                  self.opts["consent_date_property"]: _iso(dt.datetime.now(
                                      dt.UTC))}
        if self.opts["consent_source"]:
            values[self.opts["consent_source_property"]] = self.opts["consent_source"]
        kind = self.opts["consent_limetype"]
        if current is not None:
            if current.get(approved) is on:
                return 0
            self.client.update(kind, current["_id"], values)
            return 1
        values[self.opts["consent_person_relation"]] = pid
        values[self.opts["consent_type_relation"]] = tid
        attempts = int(self.opts["max_attempts"])
        for attempt in range(1, attempts + 1):
            try:  # never blindly twice: a lost answer may have created it
                self.client.http.post(self.client.object_url(kind), json=values, attempts=1)
                return 1
            except RemoteError as exc:
                if not exc.retryable or attempt == attempts:
                    raise
            time.sleep(min(self.client.http.backoff * 2 ** (attempt - 1), 5.0))
            if tid in self.newest_by_type(self.consents_for([pid])[pid]):
                return 1
        return 0
