"""Bulk writes through APSIS One's Import v2 (a CSV upload per batch), used by large full
syncs: a mixin of :class:`syncd_apsis.connector.ApsisConnector`, which provides the client,
the attribute definitions and the options."""

from __future__ import annotations

import csv
import io
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from structlog.typing import FilteringBoundLogger

from syncd.plugin import Profile, RemoteError, Scalar, WriteResult, for_records
from syncd_apsis.client import ApsisClient, UnknownAttribute
from syncd_apsis.options import CRM_ID_KEYSPACE


class BulkWrites:
    #: The largest import file (APSIS: 50 MB); a bigger batch is split into more imports.
    MAX_IMPORT_BYTES: ClassVar[int] = 50_000_000
    #: The CSV column of the profile key (the keyspace mapping's field selector).
    KEY_COLUMN: ClassVar[str] = "profile_key"

    # what the connector provides
    email_attribute: ClassVar[str | None]
    id_attribute: ClassVar[str | None]
    config: Mapping[str, Any]
    log: FilteringBoundLogger
    section: str
    keyspace: str
    #: "email" / "sms" -> the channel discriminator
    channels: dict[str, str]
    #: outcome -> how many writes had it, and the lock of those counts
    _counts: dict[str, int]
    _counts_lock: threading.Lock

    if TYPE_CHECKING:
        @property
        def client(self) -> ApsisClient: ...

        def _key_of(self, profile: Profile) -> str | None: ...

        def _attributes_of(self, profile: Profile) -> dict[str, Scalar]: ...

        def _version_ids(self, names: list[str]) -> dict[str, str]: ...

    # -- bulk writes (Import v2) --------------------------------------------------------------

    def bulk_write(self, profiles: list[Profile]) -> list[WriteResult]:
        """Write many profiles through Import v2 (``apis.md`` 3.7); one result per profile,
        in input order. What a Profile becomes (one CSV row; the same as ``write_profiles``):

        - ``key`` (or ``email`` with the e-mail keyspace) -> the key column of the keyspace
          mapping; the profile is created when missing, updated otherwise;
        - ``email``, ``key`` and ``attributes`` (canonical names) -> one column per attribute,
          the ``crmid`` and ``email`` attributes included; ``None`` or ``""`` clears the
          attribute (``clear_existing_attributes``: an empty cell clears). Profiles are
          grouped by their set of attribute names, one import per group, so that an empty
          cell always means "clear" and an attribute a profile does not carry is left alone;
        - ``tags`` -> one column per tag named in the batch: ``true``/``false``, empty for a
          profile that does not carry the tag (left alone);
        - ``consents`` -> one column per (topic, channel) named in the batch: ``opt-in`` /
          ``opt-out``, empty for a profile that does not carry it (left alone).

        Profiles with an undefined attribute, or no key, fail before any import with the
        reason ``write_profiles`` gives. A row APSIS rejects fails alone, with its reason (not
        retryable). An import that fails, or does not finish within ``import_timeout``,
        fails all its profiles as retryable. Import results give counts only: which succeeded
        rows were created and which updated is inferred (counts are exact, first occurrences
        of a key are taken as the created ones)."""
        if not profiles:
            return []
        deadline = time.monotonic() + float(self.config["import_timeout"])
        results: list[WriteResult | None] = [None] * len(profiles)
        groups: dict[tuple[str, ...], list[tuple[int, str, dict[str, Scalar]]]] = {}
        for index, profile in enumerate(profiles):
            key = self._key_of(profile)
            if not key:
                results[index] = WriteResult(
                    profile.key, "failed", f"no profile key: keyspace {self.keyspace} needs an "
                    f"e-mail address (fix: use keyspace {CRM_ID_KEYSPACE})")
                continue
            attrs = self._attributes_of(profile)
            try:
                self._version_ids(list(attrs))  # the same check, and reason, as _write
            except UnknownAttribute as exc:
                results[index] = WriteResult(profile.key, "failed", str(exc), retryable=False)
                continue
            except RemoteError as exc:
                results[index] = WriteResult(profile.key, "failed", str(exc),
                                             retryable=exc.retryable)
                continue
            groups.setdefault(tuple(sorted(attrs)), []).append((index, key, attrs))
        for names, members in groups.items():
            for chunk, data, body in self._import_files(list(names), members, profiles):
                with for_records([profiles[i].key for i, _, _ in chunk]):  # syncd explain
                    self._run_import(chunk, data, body, profiles, results, deadline)
        done = [r for r in results if r is not None]
        assert len(done) == len(profiles)
        with self._counts_lock:
            for r in done:
                self._counts[r.outcome] = self._counts.get(r.outcome, 0) + 1
        return done

    def _import_files(self, names: list[str], members: list[tuple[int, str, dict[str, Scalar]]],
                      profiles: list[Profile]):
        """``(members, csv bytes, import body)`` for ``members``, split while over
        ``MAX_IMPORT_BYTES``."""
        data, body = self._import_file(names, members, profiles)
        if len(data) > self.MAX_IMPORT_BYTES and len(members) > 1:
            half = len(members) // 2
            yield from self._import_files(names, members[:half], profiles)
            yield from self._import_files(names, members[half:], profiles)
        else:
            yield members, data, body

    def _import_file(self, names: list[str], members: list[tuple[int, str, dict[str, Scalar]]],
                     profiles: list[Profile]) -> tuple[bytes, dict[str, Any]]:
        first = [n for n in (self.email_attribute, self.id_attribute) if n in names]
        names = first + [n for n in names if n not in first]
        tags = sorted({t for i, _, _ in members for t in profiles[i].tags})
        consents = sorted({(c.topic, self.channels.get(c.channel, c.channel))
                           for i, _, _ in members for c in profiles[i].consents})
        # Column names are our own (field selectors): the attributes' discriminators, and
        # prefixed tag and consent discriminators.
        header = [self.KEY_COLUMN, *names, *(f"tag:{t}" for t in tags),
                  *(f"consent:{t}:{c}" for t, c in consents)]
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\r\n")
        writer.writerow(header)
        for i, key, attrs in members:
            profile = profiles[i]
            given: dict[tuple[str, str], str] = {}
            for c in profile.consents:  # the last one of a (topic, channel) wins, as in _write
                given[(c.topic, self.channels.get(c.channel, c.channel))] = \
                    "opt-in" if c.opted_in else "opt-out"
            writer.writerow([
                key, *(_cell(attrs[n]) for n in names),
                *(_cell(profile.tags[t]) if t in profile.tags else "" for t in tags),
                *(given.get(tc, "") for tc in consents)])
        body = {
            "keyspace_mappings": [{"keyspace_discriminator": self.keyspace,
                                   "field_selector": self.KEY_COLUMN}],
            # GAP (apis.md 3.7): these field names are not public beyond keyspace_mappings[].
            # keyspace_discriminator; the emulator accepts these.
            "attribute_mappings": [{"attribute_discriminator": n, "field_selector": n}
                                   for n in names],
            "tag_mappings": [{"tag_discriminator": t, "field_selector": f"tag:{t}"}
                             for t in tags],
            "consent_mappings": [{"topic_discriminator": t, "channel_discriminator": c,
                                  "field_selector": f"consent:{t}:{c}"} for t, c in consents],
            # every profile of a file carries every attribute column: an empty cell is a
            # value to clear, as None is in write_profiles
            "options": {"update_existing_profiles": True, "clear_existing_attributes": True},
            "file_type": "text/csv",
        }
        return text.getvalue().encode("utf-8"), body

    def _run_import(self, members: list[tuple[int, str, dict[str, Scalar]]], data: bytes,
                    body: dict[str, Any], profiles: list[Profile],
                    results: list[WriteResult | None], deadline: float) -> None:
        """Create, upload, poll one import; fill ``results`` of its members."""
        client, section = self.client, self.section
        timeout = self.config["import_timeout"]

        def fail_all(reason: str, retryable: bool) -> None:
            for i, _, _ in members:
                results[i] = WriteResult(profiles[i].key, "failed", reason, retryable=retryable)

        try:
            answer, attempt = None, 0
            while answer is None:
                answer, wait = client.create_import(section, body)
                if answer is None:  # 429: too many imports a minute, or pending
                    attempt += 1
                    wait = wait if wait is not None else min(30.0, 0.5 * 2 ** attempt)
                    if time.monotonic() + wait > deadline:
                        fail_all(f"APSIS refused the import (429: too many import requests or "
                                 f"pending imports) for longer than import_timeout "
                                 f"({timeout:g} s)", True)
                        return
                    time.sleep(wait)
            import_id = str(answer["import_id"])
            with self._counts_lock:
                self._counts["imports"] = self._counts.get("imports", 0) + 1
            client.upload_import_file(str(answer["file_upload_url"]), data)
            interval = float(self.config["import_poll_interval"])
            while True:
                if time.monotonic() + interval > deadline:
                    fail_all(f"import {import_id} did not finish within import_timeout "
                             f"({timeout:g} s)", True)
                    return
                time.sleep(interval)
                status = client.import_status(section, import_id)
                state = status.get("status")
                if state == "completed":
                    break
                if state == "failed":
                    detail = status.get("error") or status.get("detail") or "no reason given"
                    fail_all(f"import {import_id} failed: {detail}", True)
                    return
                interval = min(interval * 1.5, 10.0)
        except RemoteError as exc:
            fail_all(str(exc), exc.retryable)
            return
        except Exception as exc:  # a bug or an odd answer: record it, keep the run going
            self.log.exception("apsis.import_failed")
            fail_all(f"{type(exc).__name__}: {exc}", True)
            return
        self._map_import_result(members, status.get("result") or {}, profiles, results)

    def _map_import_result(self, members: list[tuple[int, str, dict[str, Scalar]]],
                           result: dict[str, Any], profiles: list[Profile],
                           results: list[WriteResult | None]) -> None:
        failed: dict[int, str] = {}  # position in members -> reason
        for error in result.get("errors") or []:
            row, reason = error.get("row"), str(error.get("reason") or "rejected by the import")
            if isinstance(row, int) and 1 <= row <= len(members):
                failed[row - 1] = reason
            else:  # no usable row number: the first not yet failed member with the key
                pos = next((p for p, (_, k, _) in enumerate(members)
                            if k == error.get("profile_key") and p not in failed), None)
                if pos is not None:
                    failed[pos] = reason
        seen: set[str] = set()
        firsts: list[int] = []
        repeats: list[int] = []
        for pos, (_, key, _) in enumerate(members):
            if pos not in failed:
                (repeats if key in seen else firsts).append(pos)
                seen.add(key)
        created = set((firsts + repeats)[:max(0, int(result.get("created") or 0))])
        for pos, (i, key, _) in enumerate(members):
            profile = profiles[i]
            if pos in failed:
                results[i] = WriteResult(profile.key, "failed", f"import: {failed[pos]}",
                                         retryable=False)
            else:
                results[i] = WriteResult(profile.key, "created" if pos in created else "updated",
                                         remote_id=key if key != profile.key else None)

def _cell(value: Scalar) -> str:
    """A CSV cell: empty for None (clear), true/false for booleans, text otherwise."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
