"""The APSIS One destination connector: writes profiles (attributes, consents, tags), deletes
them.

How one profile is written (``apis.md`` 3.3):

- a key syncd wrote before (``known``): v2 merge-patch of the attributes by discriminator
  (``null`` clears). v2 never creates a profile, so a 404 (deleted in APSIS meanwhile) falls
  back to creating it;
- a key syncd never wrote: v1 PATCH by attribute *version id*, which creates the profile
  implicitly (outcome ``created``); attributes to clear then go in one v2 merge-patch;
- then consents (consent 2.0, one POST each to the channel discriminator configured for the
  consent's channel, ``email_channel`` / ``sms_channel``; 409 = already so = fine) and tags
  (merge-patch).

The profile key is the CRM id in the ``crm-id`` keyspace by default, so a changed e-mail
address updates the e-mail attribute (and re-keys the e-mail key) of the *same* profile.
A batch is written concurrently (``concurrency`` threads) within the account budget and the
per-profile-key budget; results come back in input order.

Large full syncs write through Import v2 instead (BULK_WRITE, ``bulk_write``, ``apis.md``
3.7): one CSV import per call (per attribute set, per 50 MB), polled until done; see
:meth:`ApsisConnector.bulk_write`.

Consent changes made in APSIS One (unsubscribes) are read back from the e-mail event export
(READ_CONSENT_CHANGES, see :mod:`syncd_apsis.consent_changes`), so that the CRM can be told.
"""

from __future__ import annotations

import csv
import io
import math
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

from syncd.config.schema import Option, Secret
from syncd.connector import Capability, Connector
from syncd.exceptions import RemoteError
from syncd.records import ConsentChange, Profile, Scalar, WriteResult
from syncd_apsis.client import ApsisClient
from syncd_apsis.consent_changes import ConsentChangeReader

ATTRIBUTE_PREFIX = "com.apsis1.attributes."
CRM_ID_KEYSPACE = "com.apsis1.keyspaces.crm-id"
EMAIL_KEYSPACE = "com.apsis1.keyspaces.email"


class UnknownAttribute(Exception):
    pass


class ApsisConnector(Connector):
    kind: ClassVar[str] = "apsis"
    description = "APSIS One: profiles, consents (2.0) and tags in one section"
    capabilities = frozenset({Capability.WRITE_PROFILES, Capability.DELETE_PROFILES,
                              Capability.READ_CONSENT_CHANGES, Capability.BULK_WRITE})
    emulator = "syncd_apsis.emulator:ApsisEmulator"
    email_attribute = "com.apsis1.attributes.email"
    #: Seconds before an attribute name found undefined may reload the definitions again.
    DEFINITIONS_RETRY: ClassVar[float] = 60.0
    #: The largest import file (APSIS: 50 MB); a bigger batch is split into more imports.
    MAX_IMPORT_BYTES: ClassVar[int] = 50_000_000
    #: The CSV column of the profile key (the keyspace mapping's field selector).
    KEY_COLUMN: ClassVar[str] = "profile_key"
    id_attribute = "com.apsis1.attributes.crmid"
    options = (
        Option("base_url", str, "https://api.apsis.one",
               "Base URL of the APSIS One API (APAC: https://api-apac.apsis.one)."),
        Option("client_id", str, doc="API client id (APSIS One > Settings > API keys)."),
        Option("client_secret", Secret, doc="API client secret (a secret)."),
        Option("section", str, doc="The section discriminator the profiles' attributes, "
                                   "consents and tags live in."),
        Option("keyspace", str, CRM_ID_KEYSPACE,
               "Keyspace of the profile key. With the crm-id keyspace the key is the CRM id, "
               "so a changed e-mail address updates the same profile instead of creating a "
               "second one; the e-mail keyspace keys profiles by address."),
        Option("requests_per_second", float, 100.0,
               "Account budget of API requests per second (APSIS allows 100).", minimum=0.1),
        Option("per_profile_per_second", float, 10.0,
               "Requests per second to one profile key (APSIS allows 10).", minimum=0.1),
        Option("concurrency", int, 8, "Concurrent requests while writing one batch.",
               minimum=1, maximum=64),
        Option("timeout", float, 30.0, "Seconds before an API request times out.", minimum=1),
        Option("max_attempts", int, 6,
               "Attempts of one API request (429, 5xx and timeouts are retried).", minimum=1),
        Option("email_channel", str, "com.apsis1.channels.email",
               "Channel discriminator of e-mail consents (verify in your account)."),
        Option("sms_channel", str, "com.apsis1.channels.sms",
               "Channel discriminator of SMS consents (verify in your account)."),
        Option("consent_poll_overlap", float, 120.0,
               "Seconds each read of consent changes (unsubscribes, from the e-mail event "
               "export) reaches back before its cursor, for events APSIS records late. Rows "
               "the previous read returned are not returned again.", minimum=0),
        Option("consent_export_timeout", float, 120.0,
               "Most seconds one read of consent changes waits for its export (polling, and "
               "a 429's Retry-After: APSIS allows 1 export request a minute); past it the "
               "read returns nothing and the next one resumes the same export.", minimum=1),
        Option("export_poll_interval", float, 1.0,
               "Seconds before the first status poll of an export (doubling up to 10).",
               minimum=0.01),
        Option("import_poll_interval", float, 1.0,
               "Seconds before the first status poll of a bulk import (each next poll waits "
               "half as long again, up to 10).", minimum=0.01),
        Option("import_timeout", float, 480.0,
               "Most seconds one bulk write (full syncs) waits for its imports, 429 waits "
               "(APSIS allows 10 import requests a minute and 3 pending imports) and polling "
               "included; past it its profiles fail as retryable. Keep it under the core's "
               "600 s call timeout.", minimum=1, maximum=590),
        Option("export_crm_id_column", str, "com.apsis1.attributes.crmid",
               "The attribute that decorates e-mail event export rows with the CRM id, and "
               "the column it comes back as (the column name is not documented)."),
        Option("export_topic_column", str, "topic_discriminator",
               "The export column naming an UNSUBSCRIBED row's topic (not documented); rows "
               "without it are resolved through the profile's current opt-outs."),
    )

    def __init__(self, name: str, config: Mapping[str, Any]):
        defaults = {o.name: o.default for o in self.options if not o.required}
        config = {**defaults, **dict(config)}
        if isinstance(config.get("client_secret"), str):  # given by code, not by the loader
            config["client_secret"] = Secret(config["client_secret"])
        super().__init__(name, config)
        self.section: str = self.config["section"]
        self.keyspace: str = self.config["keyspace"]
        self.channels = {"email": self.config["email_channel"],
                         "sms": self.config["sms_channel"]}
        self._client: ApsisClient | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._versions: dict[str, str] | None = None  # discriminator -> version id
        #: unknown name -> when it last made us reload the definitions
        self._refreshed_for: dict[str, float] = {}
        self._defs_lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._counts_lock = threading.Lock()
        c = self.config
        self._consents = ConsentChangeReader(
            lambda: self.client, channel=self.channels["email"], section=self.section,
            overlap=float(c["consent_poll_overlap"]),
            timeout=float(c["consent_export_timeout"]),
            poll_interval=float(c["export_poll_interval"]),
            crm_id_column=c["export_crm_id_column"], topic_column=c["export_topic_column"])

    def __repr__(self) -> str:
        return (f"ApsisConnector(name={self.name!r}, base_url={self.config.get('base_url')!r}, "
                f"section={self.section!r})")

    # -- life cycle ------------------------------------------------------------------------

    def start(self) -> None:
        with self._start_lock:
            if self._client is not None:
                return
            c = self.config
            concurrency = int(c["concurrency"])
            self._client = ApsisClient(
                c["base_url"], c["client_id"], c["client_secret"],
                requests_per_second=float(c["requests_per_second"]),
                per_profile_per_second=float(c["per_profile_per_second"]),
                timeout=float(c["timeout"]), max_attempts=int(c["max_attempts"]),
                pool_size=concurrency + 2, name=self.name,
                # not an option: tests shorten the back-off between retries
                backoff=float(c.get("backoff", 0.5)),
            )
            self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix=f"apsis-{self.name}")

    def stop(self) -> None:
        with self._start_lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None
            if self._client is not None:
                self._client.close()
                self._client = None

    @property
    def client(self) -> ApsisClient:
        if self._client is None:
            self.start()
        assert self._client is not None
        return self._client

    def check(self) -> dict[str, Any]:
        self.client.authenticate()
        sections = [s.get("discriminator") for s in self.client.sections()]
        if self.section not in sections:
            raise RemoteError(
                f"section {self.section!r} does not exist in the APSIS One account (fix: set "
                f"`section` to one of: {', '.join(map(str, sections)) or 'none found'})",
                status=404)
        return {"section": self.section, "keyspace": self.keyspace,
                "sections": len(sections), **self.client.stats()}

    def stats(self) -> dict[str, Any]:
        with self._counts_lock:
            counts = dict(self._counts)
        client = self._client.stats() if self._client is not None else {}
        consents = {f"consent_{k}": v for k, v in self._consents.counts.items()}
        return {**client, **counts, **consents}

    @classmethod
    def sandbox_config(cls, emulator: Any) -> dict[str, Any]:
        return {"kind": cls.kind, "base_url": emulator.url, "client_id": emulator.client_id,
                "client_secret": emulator.client_secret, "section": emulator.section}

    @classmethod
    def canonical_attribute(cls, name: str) -> str:
        return name if "." in name else ATTRIBUTE_PREFIX + name

    # -- attribute definitions ---------------------------------------------------------------

    def _version_ids(self, names: list[str]) -> dict[str, str]:
        """Version ids of ``names``. The definitions are loaded once, lazily, and reloaded
        once when a name is not defined (an admin may just have created it); the same unknown
        name reloads them again only after ``DEFINITIONS_RETRY`` seconds. Raises
        UnknownAttribute naming what is missing."""
        with self._defs_lock:
            if self._versions is None:
                self._versions = self.client.attribute_versions(self.section)
            missing = [n for n in names if n not in self._versions]
            now = time.monotonic()
            if any(now - self._refreshed_for.get(n, -math.inf) >= self.DEFINITIONS_RETRY
                   for n in missing):
                self._refreshed_for.update(dict.fromkeys(missing, now))
                self._versions = self.client.attribute_versions(self.section)
                missing = [n for n in names if n not in self._versions]
            if missing:
                raise UnknownAttribute(
                    f"attribute{'s' if len(missing) > 1 else ''} {', '.join(missing)} not "
                    f"defined in section {self.section} (fix: create "
                    f"{'them' if len(missing) > 1 else 'it'} in APSIS One, or correct the "
                    f"field mapping)")
            versions = self._versions
            return {n: versions[n] for n in names}

    # -- writing -----------------------------------------------------------------------------

    def _attributes_of(self, profile: Profile) -> dict[str, Scalar]:
        attrs: dict[str, Scalar] = {self.email_attribute: profile.email,
                                    self.id_attribute: profile.key}
        for name, value in profile.attributes.items():
            attrs[self.canonical_attribute(name)] = value
        # an empty text is no value: clear it, as the rules' expected view does
        return {k: (None if v == "" else v) for k, v in attrs.items()}

    def _key_of(self, profile: Profile) -> str | None:
        return profile.email if self.keyspace == EMAIL_KEYSPACE else profile.key

    def write_profiles(self, profiles: list[Profile], known: set[str]) -> list[WriteResult]:
        if not profiles:
            return []
        client = self.client  # starts the pool too
        assert self._pool is not None and client is not None
        # Profiles of one key are written in input order by one task: the last one wins, and
        # one key never has two requests in flight (its 10/s budget is then easy to keep).
        by_key: dict[str, list[int]] = {}
        for index, profile in enumerate(profiles):
            by_key.setdefault(profile.key, []).append(index)
        results: list[WriteResult | None] = [None] * len(profiles)

        def write_key(indices: list[int]) -> None:
            for i in indices:
                results[i] = self._write_safely(profiles[i], profiles[i].key in known)

        for future in [self._pool.submit(write_key, ix) for ix in by_key.values()]:
            future.result()
        assert all(r is not None for r in results)
        done: list[WriteResult] = results  # type: ignore[assignment]
        with self._counts_lock:
            for r in done:
                self._counts[r.outcome] = self._counts.get(r.outcome, 0) + 1
        return done

    def _write_safely(self, profile: Profile, known: bool) -> WriteResult:
        try:
            return self._write(profile, known)
        except UnknownAttribute as exc:
            return WriteResult(profile.key, "failed", str(exc), retryable=False)
        except RemoteError as exc:
            return WriteResult(profile.key, "failed", str(exc), retryable=exc.retryable)
        except Exception as exc:  # a bug or an odd answer: record it, keep the batch going
            self.log.exception("apsis.write_failed", key=profile.key)
            return WriteResult(profile.key, "failed", f"{type(exc).__name__}: {exc}",
                               retryable=True)

    def _write(self, profile: Profile, known: bool) -> WriteResult:
        key = self._key_of(profile)
        if not key:
            return WriteResult(profile.key, "failed",
                               f"no profile key: keyspace {self.keyspace} needs an e-mail "
                               f"address (fix: use keyspace {CRM_ID_KEYSPACE})")
        attrs = self._attributes_of(profile)
        versions = self._version_ids(list(attrs))  # unknown names fail before any write
        client, ks, section = self.client, self.keyspace, self.section
        outcome = "updated"
        if not known or not client.patch_attributes(ks, key, section, attrs):
            outcome = "created"
            values = {versions[n]: v for n, v in attrs.items() if v is not None}
            client.put_attributes_v1(ks, key, section, values)
            cleared = {n: None for n, v in attrs.items() if v is None}
            if cleared and not known:  # it may have existed before syncd knew it
                client.patch_attributes(ks, key, section, cleared)
        for consent in profile.consents:
            channel = self.channels.get(consent.channel, consent.channel)
            client.add_consent(ks, key, section, topic=consent.topic, channel=channel,
                               type="opt-in" if consent.opted_in else "opt-out",
                               reason="synced from the CRM", source="syncd")
        if profile.tags:
            client.set_tags(ks, key, section, profile.tags)
        return WriteResult(profile.key, outcome,
                           remote_id=key if key != profile.key else None)

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
                self._run_import(chunk, data, body, profiles, results, deadline)
        assert all(r is not None for r in results)
        done: list[WriteResult] = results  # type: ignore[assignment]
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
        firsts, repeats = [], []
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

    # -- consent changes made in APSIS One ------------------------------------------------------

    def read_consent_changes(self, cursor: str | None) -> tuple[list[ConsentChange], str]:
        """Unsubscribes since ``cursor`` (an ISO time; None: "from now on", returns
        ``([], now)``), oldest first, and the next cursor. Each change is
        ``ConsentChange(key=CRM id, topic, "email", opted_in=False, at=when)``. See
        :mod:`syncd_apsis.consent_changes` (overlap, 1-a-minute limit, resuming)."""
        return self._consents.read(cursor)

    # -- deleting ----------------------------------------------------------------------------

    def delete_profiles(self, keys: list[str]) -> list[WriteResult]:
        """Delete by CRM id (``keys`` are what ``write_profiles`` was given as ``key``).
        Profiles keyed by e-mail are reached through their crm-id key, which the crmid
        attribute gave them."""
        if not keys:
            return []
        client = self.client
        assert self._pool is not None
        ks = CRM_ID_KEYSPACE if self.keyspace == EMAIL_KEYSPACE else self.keyspace

        def one(key: str) -> WriteResult:
            try:
                client.delete_profile(ks, key)
                return WriteResult(key, "deleted")
            except RemoteError as exc:
                return WriteResult(key, "failed", str(exc), retryable=exc.retryable)
            except Exception as exc:
                self.log.exception("apsis.delete_failed", key=key)
                return WriteResult(key, "failed", f"{type(exc).__name__}: {exc}",
                                   retryable=True)

        results = list(self._pool.map(one, keys))
        with self._counts_lock:
            for r in results:
                self._counts[r.outcome] = self._counts.get(r.outcome, 0) + 1
        return results


def _cell(value: Scalar) -> str:
    """A CSV cell: empty for None (clear), true/false for booleans, text otherwise."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
