"""Labels of Tribe persons: read strictly, and opt-in labels written (``write_consents``).

Labels and when they were set. How a person links to its labels is a GAP in Tribe's public
docs, so it is configurable. By default (the emulator's model) ``labels_nav`` leads to *link*
entities (``LabelAssignments``, of the set ``label_link_set``) that carry ``label_link_time_field``
(``CreationDate``: when the label was set, which fills ``Record.label_times``) and navigate to
the label (``label_link_label_nav``) and to the person (``label_link_owner_nav``). With
``label_link_label_nav = ""``, ``labels_nav`` leads straight to the labels (e.g. ``Labels``):
no times then.

Strict reading (a missing label read as "no label" is an opt-out of everyone who had it): when
the labels were expanded, a person whose answer lacks ``labels_nav``, whose ``labels_nav`` is
not a list, a link whose label (``label_link_label_nav``) did not come with it, or a label
without its ``Name``, raises :class:`LabelDataError` naming what was missing. The connector
turns that into ``Record.error`` (the record fails, retryable, and nothing is written for it)
and ``write_consents`` into a retryable failure that writes nothing.

``write_consents`` (WRITE_CONSENTS) sets or removes opt-in labels by name: it POSTs a link /
DELETEs it (or, without links, binds the person's whole label list with one PUT). Each change
makes Tribe fire the person's update webhook, so the change comes back as a record update.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping
from datetime import UTC
from typing import TYPE_CHECKING, Any, ClassVar

from structlog.typing import FilteringBoundLogger

from syncd.plugin import RemoteError, WriteResult, for_records
from syncd_tribe.odata import parse_datetime

if TYPE_CHECKING:
    from syncd_tribe.client import TribeClient


class UnknownLabel(Exception):
    """A label name the consent mapping uses is not in Tribe."""


class LabelDataError(Exception):
    """A person came back without its label data, or with label data that is not what the
    options describe: its labels are unknown (never "none")."""


def _iso_utc(value: Any) -> str | None:
    """An ISO time with its offset (UTC when the API gives none), or None if unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_datetime(value).astimezone(UTC).isoformat().replace("+00:00", "Z")
    except ValueError:
        return None


def _later(a: str, b: str) -> bool:
    return parse_datetime(a) > parse_datetime(b)


class Labels:
    """Mixed into the connector (which provides ``opts``, ``client``, ``log``,
    ``_labels_lock``, ``_label_ids`` and ``_refreshed_for``)."""

    opts: dict[str, Any]
    client: TribeClient
    log: FilteringBoundLogger
    _labels_lock: threading.Lock
    #: label name -> id (None until the label list is first read)
    _label_ids: dict[str, str] | None
    #: unknown label name -> when it last made us reload the label list
    _refreshed_for: dict[str, float]

    #: Seconds before a label name found unknown may reload the label list again.
    LABELS_RETRY: ClassVar[float] = 30.0

    # -- reading -----------------------------------------------------------------------------

    def label_expand(self) -> str | None:
        """The ``$expand`` that brings a person's labels (None without ``labels_nav``)."""
        nav, link = self.opts["labels_nav"], self.opts["label_link_label_nav"]
        if not nav:
            return None
        if link:
            return (f"{nav}($select=ID,{self.opts['label_link_time_field']};"
                    f"$expand={link}($select=ID,Name))")
        return f"{nav}($select=ID,Name)"

    def label_items(self, person: Mapping[str, Any]) -> list[tuple[dict, str | None, Any]]:
        """``(label, link id or None, when set or None)`` of each label on a person read with
        :meth:`label_expand`; :class:`LabelDataError` when that data is missing or malformed."""
        nav, link = self.opts["labels_nav"], self.opts["label_link_label_nav"]
        if not nav:
            return []
        fix = "check labels_nav and label_link_* against the account's $metadata"
        if nav not in person:
            raise LabelDataError(f"the person came without its labels: '{nav}' (labels_nav) "
                                 f"is missing from the answer although it was expanded "
                                 f"(fix: {fix})")
        items = person.get(nav)
        if not isinstance(items, list):
            raise LabelDataError(f"the person's '{nav}' (labels_nav) is not a list of "
                                 f"{'label links' if link else 'labels'} (fix: {fix})")
        out = []
        for item in items:
            if not isinstance(item, Mapping):
                raise LabelDataError(f"an item of the person's '{nav}' is not an entity "
                                     f"(fix: {fix})")
            label: Any = item
            if link:
                label = item.get(link)
                if not isinstance(label, Mapping):
                    raise LabelDataError(
                        f"the label link {item.get('ID')} came without its label '{link}' "
                        f"(label_link_label_nav; not expanded?) (fix: {fix})")
            name = label.get("Name")
            if not isinstance(name, str) or not name:
                raise LabelDataError(f"the label {label.get('ID')} came without its Name "
                                     f"(fix: {fix})")
            out.append((dict(label), item.get("ID") if link else None,
                        item.get(self.opts["label_link_time_field"]) if link else None))
        return out

    def read_labels(self, person: Mapping[str, Any]) -> tuple[frozenset[str], dict[str, str]]:
        """The person's label names and when each was set (the latest link's time)."""
        names: set[str] = set()
        label_times: dict[str, str] = {}
        for label, _, when in self.label_items(person):
            name = str(label["Name"])
            names.add(name)
            stamp = _iso_utc(when)
            if stamp and (name not in label_times or _later(stamp, label_times[name])):
                label_times[name] = stamp
        return frozenset(names), label_times

    # -- writing opt-in labels ---------------------------------------------------------------

    def _resolve_labels(self, names: list[str]) -> dict[str, str]:
        """Label name -> id. The label list is loaded once, lazily, and reloaded when a name
        is not in it (an admin may just have created the label); the same unknown name
        reloads it again only after ``LABELS_RETRY`` seconds. A name matches exactly, else
        case-insensitively when that is unambiguous. Raises UnknownLabel naming what is missing."""
        with self._labels_lock:
            now = time.monotonic()
            missing = [n for n in names if self._match(n) is None]
            if self._label_ids is None or any(
                    now - self._refreshed_for.get(n, -math.inf) >= self.LABELS_RETRY
                    for n in missing):
                if self._label_ids is not None:
                    self._refreshed_for.update(dict.fromkeys(missing, now))
                label_ids: dict[str, str] = {}
                self._label_ids = label_ids
                for label in self.client.iterate(self.opts["label_set"], page_size=500,
                                                 select=["ID", "Name"]):
                    if label.get("Name") and label.get("ID"):
                        label_ids.setdefault(str(label["Name"]), str(label["ID"]).lower())
            found = {n: self._match(n) for n in names}
        missing = [n for n, i in found.items() if i is None]
        if missing:
            raise UnknownLabel(
                f"label{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))} "
                f"not found in Tribe (fix: create {'them' if len(missing) > 1 else 'it'} in "
                f"Tribe, or correct the consent mapping)")
        return {n: i for n, i in found.items() if i is not None}

    def _match(self, name: str) -> str | None:
        ids = self._label_ids or {}
        if name in ids:
            return ids[name]
        folded = [i for n, i in ids.items() if n.casefold() == name.casefold()]
        return folded[0] if len(folded) == 1 else None

    def write_consents(self, record_id: str, labels: dict[str, bool]) -> WriteResult:
        """Set (True) or remove (False) the named opt-in labels on person ``record_id``.

        Idempotent: a label already set / already absent counts as unchanged; the outcome
        is ``updated`` when at least one label changed, else ``unchanged``. An unknown label
        name fails the whole call (nothing written, not retryable); so does a person that no
        longer exists. API failures are retryable when the API says so (5xx, 429 ...)."""
        rid = str(record_id).lower()
        if not labels:
            return WriteResult(rid, "unchanged")
        if not self.opts["labels_nav"]:
            return WriteResult(rid, "failed", "labels_nav is empty: labels cannot be written "
                                              "(fix: set labels_nav)", retryable=False)
        try:
            ids = self._resolve_labels(list(labels))
            with for_records([rid]):  # syncd explain shows these calls
                changed = self._write_labels(rid, ids, labels)
            if changed is None:
                return WriteResult(rid, "failed", f"no person {rid} in Tribe (deleted?)",
                                   retryable=False)
        except UnknownLabel as exc:
            return WriteResult(rid, "failed", str(exc), retryable=False)
        except LabelDataError as exc:  # the current labels are unknown: change nothing
            return WriteResult(rid, "failed", str(exc), retryable=True)
        except RemoteError as exc:
            return WriteResult(rid, "failed", str(exc), retryable=exc.retryable)
        except Exception as exc:  # a bug or an odd answer: report it, may work next time
            self.log.exception("tribe.write_consents_failed", record=rid)
            return WriteResult(rid, "failed", f"{type(exc).__name__}: {exc}", retryable=True)
        if changed:
            self.log.info("tribe.labels_written", record=rid, changed=changed)
        return WriteResult(rid, "updated" if changed else "unchanged")

    def _write_labels(self, rid: str, ids: dict[str, str], labels: dict[str, bool]
                      ) -> int | None:
        """How many labels changed; None when the person does not exist."""
        person = self.client.get(self.opts["person_set"], rid, select=["ID"],
                                 expand=self.label_expand())
        if person is None:
            return None
        current: dict[str, list] = {}  # label id -> its links (two if set twice)
        for label, link, _ in self.label_items(person):
            current.setdefault(str(label.get("ID") or "").lower(), []).append(link)
        wanted = {ids[name]: bool(on) for name, on in labels.items()}
        if self.opts["label_link_label_nav"]:
            return self._write_links(rid, current, wanted)
        return self._write_label_list(rid, current, wanted)

    def _write_links(self, rid: str, current: dict[str, list], wanted: dict[str, bool]) -> int:
        """One POST per label to set, a DELETE per link of a label to remove (a label set
        twice has two); 409 on a POST (set meanwhile) and 404 on a DELETE (removed
        meanwhile) count as unchanged."""
        changed = 0
        owner, label_nav = self.opts["label_link_owner_nav"], self.opts["label_link_label_nav"]
        for label_id, on in wanted.items():
            if on and label_id not in current:
                changed += self._create_link(rid, label_id,
                                             {owner: {"ID": rid}, label_nav: {"ID": label_id}})
            elif not on and label_id in current:
                gone = [link for link in current[label_id]
                        if link and self.client.delete(self.opts["label_link_set"], str(link))]
                changed += bool(gone)
        return changed

    def _create_link(self, rid: str, label_id: str, body: dict[str, Any]) -> int:
        """POST a label link, never blindly twice: when an answer is lost (5xx, a timeout, a
        dropped connection) the link may have been made all the same, so the person's labels
        are read again before another POST (a second one would set the label twice)."""
        attempts = int(self.opts["max_attempts"])
        for attempt in range(1, attempts + 1):
            try:
                made = self.client.create(self.opts["label_link_set"], body, ok=(409,),
                                          attempts=1)
                return int(made is not None)
            except RemoteError as exc:
                if not exc.retryable or attempt == attempts:
                    raise
            time.sleep(min(self.client.http.backoff * 2 ** (attempt - 1), 5.0))
            person = self.client.get(self.opts["person_set"], rid, select=["ID"],
                                     expand=self.label_expand())
            if person is not None and any(str(label.get("ID") or "").lower() == label_id
                                          for label, _, _ in self.label_items(person)):
                return 1  # the lost answer's POST was applied
        return 0

    def _write_label_list(self, rid: str, current: dict[str, Any],
                          wanted: dict[str, bool]) -> int:
        """Without links: bind the person's whole label list with one PUT."""
        labels = list(current)
        for label_id, on in wanted.items():
            if on and label_id not in labels:
                labels.append(label_id)
            elif not on and label_id in labels:
                labels.remove(label_id)
        changed = len(set(labels) ^ set(current))
        if changed:
            self.client.update(self.opts["person_set"], rid,
                               {self.opts["labels_nav"]: [{"ID": i} for i in labels]})
        return changed

