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

Profiles are read back by key for dry runs (READ_PROFILES: consents, attributes, tags; see
:mod:`syncd_apsis.reads`, whose attribute and tag paths are GAPs and options).

Consent changes made in APSIS One (unsubscribes) are read back from the e-mail event export
(READ_CONSENT_CHANGES, see :mod:`syncd_apsis.consent_changes`), so that the CRM can be told.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

from syncd.plugin import (
    Capability,
    Connector,
    ConsentChange,
    EngagementBatch,
    LanePools,
    Profile,
    ProfileState,
    RemoteError,
    Scalar,
    SchemaNeeds,
    SchemaProblem,
    Secret,
    WriteResult,
    carry_context,
    for_records,
    realtime_workers,
)
from syncd_apsis import definitions
from syncd_apsis.bulk import BulkWrites
from syncd_apsis.client import ApsisClient, UnknownAttribute
from syncd_apsis.consent_changes import ConsentChangeReader
from syncd_apsis.options import CRM_ID_KEYSPACE, EMAIL_KEYSPACE, OPTIONS
from syncd_apsis.reads import ProfileReads
from syncd_apsis.responses import EngagementReader

ATTRIBUTE_PREFIX = "com.apsis1.attributes."


class ApsisConnector(BulkWrites, Connector):
    kind: ClassVar[str] = "apsis"
    description = "APSIS One: profiles, consents (2.0) and tags in one section"
    capabilities = frozenset({Capability.WRITE_PROFILES, Capability.DELETE_PROFILES,
                              Capability.READ_CONSENT_CHANGES, Capability.BULK_WRITE,
                              Capability.CHECK_SCHEMA, Capability.READ_RESPONSES,
                              Capability.READ_PROFILES})
    emulator = "syncd_apsis.emulator:ApsisEmulator"
    email_attribute = "com.apsis1.attributes.email"
    #: Seconds before an attribute name found undefined may reload the definitions again.
    DEFINITIONS_RETRY: ClassVar[float] = 60.0
    id_attribute = "com.apsis1.attributes.crmid"
    options = OPTIONS
    #: Thread-safe (a bulk and a real-time lane): the client, its budgets (account and per
    #: key), holds and token are shared under locks, as are the definitions, the counts and
    #: the export readers' state; each lane writes and reads through its own worker pool.
    two_lanes = True

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
        self._pools: LanePools | None = None
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
        self._engagement = EngagementReader(
            lambda: self.client, crm_id_column=c["export_crm_id_column"],
            overlap=float(c.get("responses_overlap", 300.0)),
            poll_interval=float(c["export_poll_interval"]),
            sms_path=c.get("sms_export_path", "/sms/reports"),
            sms_columns=c.get("sms_columns") or {}, sms_types=c.get("sms_type_names") or {},
            header_auth=bool(c.get("export_header_auth", False)))
        self._reads = ProfileReads(
            lambda: self.client, section=self.section, keyspace=self.keyspace,
            channels=self.channels, email_attribute=self.email_attribute,
            id_attribute=self.id_attribute, attributes_path=c["profile_attributes_path"],
            tags_path=c["profile_tags_path"], log=self.log)

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
                pool_size=concurrency + realtime_workers(concurrency) + 2,  # both lanes
                name=self.name,
                # not an option: tests shorten the back-off between retries
                backoff=float(c.get("backoff", 0.5)),
                token_file=self.token_file(),
            )
            self._pools = LanePools(concurrency, f"apsis-{self.name}")

    def token_file(self) -> str | None:
        """Where the access token outlives a restart: ``{state_dir}/apsis-tokens/NAME.json``
        (None without a state directory)."""
        if not self.state_dir:
            return None
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in self.name)
        return os.path.join(self.state_dir, "apsis-tokens", f"{safe}.json")

    def stop(self) -> None:
        with self._start_lock:
            if self._pools is not None:
                self._pools.shutdown()
                self._pools = None
            if self._client is not None:
                self._client.close()
                self._client = None

    @property
    def _pool(self) -> ThreadPoolExecutor | None:
        """The worker pool of the lane the caller runs in (None before ``start``)."""
        pools = self._pools
        return pools.get() if pools is not None else None

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

    def check_schema(self, needs: SchemaNeeds) -> list[SchemaProblem]:
        """The config against the account's definitions: see :mod:`syncd_apsis.definitions`."""
        return definitions.check(self, needs)

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

        for future in [self._pool.submit(carry_context(write_key), ix)
                       for ix in by_key.values()]:
            future.result()
        done = [r for r in results if r is not None]
        assert len(done) == len(profiles)
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
            return self._failed(profile.key, exc)
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
        with for_records([profile.key]):  # syncd explain shows these calls
            return self._send(profile, key, known, attrs, versions)

    def _send(self, profile: Profile, key: str, known: bool, attrs: dict[str, Scalar],
              versions: dict[str, str]) -> WriteResult:
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

    def _failed(self, key: str, exc: RemoteError) -> WriteResult:
        """A failed write with what the core's fail-fast names: status, endpoint template,
        APSIS' message (problem title - detail) and the likely fix in this connection."""
        return WriteResult(key, "failed", str(exc), retryable=exc.retryable, status=exc.status,
                           endpoint=exc.endpoint, detail=exc.detail, fix=self._fix(exc))

    def _fix(self, exc: RemoteError) -> str | None:
        conn = f"[connections.{self.name}]"
        if exc.status in (401, 403):
            return (f"check `client_id` and `client_secret` in {conn} and the API key's "
                    f"permissions in APSIS One (write access to keyspace {self.keyspace}, "
                    f"section {self.section} and its attributes)")
        if exc.status == 404 and "/consents" in (exc.endpoint or ""):
            return (f"check the consent mappings' topics and channels, and `section` in "
                    f"{conn} (now {self.section!r})")
        if exc.status == 404:
            return (f"check `section` (now {self.section!r}) and `keyspace` (now "
                    f"{self.keyspace!r}) in {conn}: the account has no such one")
        return None

    def read_profiles(self, keys: list[str]) -> list[ProfileState]:
        """Dry runs: what APSIS One holds for each key (:mod:`syncd_apsis.reads`)."""
        client = self.client  # starts the pool too
        assert self._pool is not None and client is not None
        return self._reads.read(keys, self._pool)

    # -- consent changes made in APSIS One ------------------------------------------------------

    def read_engagement(self, cursor: str | None) -> EngagementBatch:
        """Response data: one step of reading the e-mail and SMS event exports since
        ``cursor`` (:mod:`syncd_apsis.responses`)."""
        return self._engagement.read(cursor)

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
                with for_records([key]):
                    client.delete_profile(ks, key)
                return WriteResult(key, "deleted")
            except RemoteError as exc:
                return self._failed(key, exc)
            except Exception as exc:
                self.log.exception("apsis.delete_failed", key=key)
                return WriteResult(key, "failed", f"{type(exc).__name__}: {exc}",
                                   retryable=True)

        results = list(self._pool.map(carry_context(one), keys))
        with self._counts_lock:
            for r in results:
                self._counts[r.outcome] = self._counts.get(r.outcome, 0) + 1
        return results
