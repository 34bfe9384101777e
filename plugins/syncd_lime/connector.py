"""The Lime CRM connector: persons (with their company and consents) as records.

A record is a Lime person (``person_limetype``). Its fields are flat paths: the person's own
properties as the limeobject API returns them (``firstname``, ``email``, ``company`` (the
company's id) ...), and ``<company_relation>.<property>`` for its company's (``company.name``).
``Record.email`` is ``email_property``; ``Record.modified_at`` the person's ``_timestamp``;
``Record.labels`` the consent types whose newest consent is approved (:mod:`.consents`).

What is read follows what the integrations use (``set_needs``): companies only when a field
path reaches them, consents only when a consent mapping uses them. Real time: syncd's
webhook subscription (``ensure_webhook``) covers the person's events, the company's when a
company field is mapped and the consent's when a consent is; every event is read back
(``read_records``: the message is a hint, never the truth). A consent message whose consent
has no person or no consent type is discarded: logged with the reason, counted and noted
(consent id, Lime event) in the connection's ledger (``self.ledger``, kept in the state
store, so the count outlives a restart), shown in ``syncd status`` (``stats()["discarded"]``
and the last notes) and ``/metrics``; nothing else changes (seed 003).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from syncd.plugin import (
    Capability,
    Connector,
    Event,
    NeedKind,
    Page,
    PooledClient,
    Record,
    SchemaNeeds,
    SchemaProblem,
    SyncdError,
    for_records,
)
from syncd_lime import keys, schema, webhooks
from syncd_lime.client import LimeClient
from syncd_lime.companies import Companies
from syncd_lime.consents import ConsentDataError, Consents, relation_id
from syncd_lime.engagement import Engagement
from syncd_lime.options import OPTIONS, resolve_options
from syncd_lime.paging import PageState
from syncd_lime.schema import group_filters

WHATS = ("new", "update", "delete", "restore")
#: The ledger's name for messages discarded by seed 003's rule (``syncd status``, ``/metrics``).
DISCARDED = "discarded"


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


class LimeConnector(Engagement, Companies, Consents, PooledClient[LimeClient], Connector):
    kind: ClassVar[str] = "lime"
    description = "Lime CRM: persons, their company and consents, real-time through webhooks"
    capabilities = frozenset({Capability.READ_RECORDS, Capability.PARSE_WEBHOOKS,
                              Capability.WRITE_CONSENTS, Capability.READ_GROUPS,
                              Capability.CHECK_SCHEMA, Capability.READ_RECORD,
                              Capability.WRITE_RESPONSES, Capability.CREATE_TASKS})
    options = OPTIONS
    emulator = "syncd_lime.emulator:LimeEmulator"
    #: Thread-safe (a bulk and a real-time lane): the shared HttpClient (budget, holds,
    #: key), the consent types, the company cache and the counts are under locks; the
    #: fallback flags (``_relation_ranges``, ``_id_ranges``, the client's ``sends_next``)
    #: only ever turn one way; each lane reads through its own worker pool.
    two_lanes = True

    def __init__(self, name: str, config: Mapping[str, Any]):
        super().__init__(name, config)
        self.opts = resolve_options(config)
        self._types: dict[int, str] | None = None
        self._types_read = 0.0
        self._types_lock = threading.Lock()
        self._relation_ranges = True  # False once Lime refused min-/max- on a relation
        self._init_companies()
        self._hook: tuple[str, str] | None = None  # (url, subscription id) once ensured
        self._keys: keys.Keys | None = None  # once started (the ledger is set by then)

    def __repr__(self) -> str:
        return f"LimeConnector({self.name!r}, base_url={self.opts['base_url']!r})"

    # -- life cycle --------------------------------------------------------------------------

    def make_client(self) -> LimeClient:
        return LimeClient(self.opts, name=self.name)

    def start(self) -> None:
        super().start()
        self._keys = keys.Keys(keys.prefix_of(self.opts), self.ledger)
        self._keys.remember()

    @property
    def keys(self) -> keys.Keys:
        """The persons' keys (:mod:`syncd_lime.keys`)."""
        if self._keys is None:
            self._keys = keys.Keys(keys.prefix_of(self.opts), self.ledger)
        return self._keys

    def person_id(self, key: str) -> int | None:
        """The Lime id of person ``key`` (a record id, a profile key); None: not one of
        this connection's keys."""
        return self.keys.person_id(key)

    @classmethod
    def key_space(cls, name: str, config: Mapping[str, Any]) -> tuple[str, str]:
        """Lime ids are unique only per instance: keys are the prefix and the id."""
        opts = resolve_options(config)
        return keys.prefix_of(opts), keys.instance_of(opts["base_url"])

    def check(self) -> dict[str, Any]:
        self.client.http.get("api/v1/")
        return {"base_url": self.opts["base_url"]}

    def check_schema(self, needs: SchemaNeeds) -> list[SchemaProblem]:
        """The config against the limetype API: see :mod:`syncd_lime.schema`."""
        return schema.check(self, needs)

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = self._client.stats() if self._client else {"requests": 0,
                                                                         "retries": 0}
        out["discarded"] = self.ledger.counts(DISCARDED)
        out["discarded_recent"] = self.ledger.notes(DISCARDED, limit=5)
        return out

    @classmethod
    def validate(cls, name: str, config: Mapping[str, Any]) -> list[str]:
        opts = resolve_options(config)
        problems = []
        for option in ("base_url", "api_key"):
            if not opts.get(option):
                problems.append(f"{option}: required (fix: set {option} in "
                                f"[connections.{name}])")
        for name_, text in (opts.get("groups") or {}).items():
            if not isinstance(text, str) or not group_filters(text):
                problems.append(f'groups."{name_}": not a Lime filter (fix: a query string '
                                f'such as "customertype=A&not-position=")')
        return problems

    # -- sandbox -----------------------------------------------------------------------------

    @classmethod
    def sandbox_config(cls, emulator: Any) -> dict[str, Any]:
        return {"kind": cls.kind, "base_url": emulator.url, "api_key": emulator.api_key,
                "webhook_secret": emulator.webhook_secret, "requests_per_second": 0.0,
                "concurrency": 4,
                "groups": {"Key customers": "customertype=A&position=CEO"}}

    @classmethod
    def sandbox_rules(cls) -> dict[str, Any]:
        return {
            "conditions": {"customertype": "A"},
            "fields": {"firstname": "firstname", "lastname": "lastname",
                       "company.name": "company"},
            "consents": [{"label": "Newsletter", "topic": "com.apsis1.topics.newsletter",
                          "channel": "email"}],
        }

    # -- what the integrations need ----------------------------------------------------------

    def _company_prefix(self) -> str:
        return self.opts["company_relation"] + "."

    def _needs_company(self) -> bool:
        return self.needs is None or any(n.name.startswith(self._company_prefix())
                                         for n in self.needs.of(NeedKind.FIELD))

    def _needs_consents(self) -> bool:
        return self.needs is None or bool(self.needs.of(NeedKind.LABEL))

    def set_needs(self, needs: SchemaNeeds) -> None:
        """Also widens or narrows syncd's subscription when the events it needs change."""
        before = self.wanted_events()
        super().set_needs(needs)
        if self._hook is not None and self.wanted_events() != before:
            try:
                self.ensure_webhook(self._hook[0])
            except Exception as exc:  # the next start registers again
                self.log.warning("lime.subscription_update_failed", error=str(exc))

    # -- reading -----------------------------------------------------------------------------

    def read_page(self, cursor: str | None, page_size: int, since: str | None = None) -> Page:
        """Persons by ``_id``, ``page_size`` asked for at a time, paged as
        :mod:`syncd_lime.paging` says; with ``since``, those changed since then (a min-
        filter on ``changed_since_property``)."""
        filters = [(f"min-{self.opts['changed_since_property']}", since)] if since else None
        rows, nxt = self.client.page(self.opts["person_limetype"], PageState.decode(cursor),
                                     limit=page_size, filters=filters)
        return Page(tuple(self._records(rows)), nxt.encode() if nxt is not None else None)

    def read_record(self, record_id: str) -> Record | None:
        """One person read by its key: ``None`` only when Lime answers 404."""
        pid = self.person_id(record_id)
        if pid is None:
            raise SyncdError(f"{record_id!r} is not a key of Lime connection {self.name} "
                             f"(its keys are {self.keys.prefix!r} and a person id)")
        with for_records([record_id]):
            person = self.client.get(self.opts["person_limetype"], pid)
        return None if person is None else self._records([person])[0]

    def read_records(self, events: list[Event]) -> list[Record]:
        """Read back what events name: persons; a company's persons; a consent's person."""
        wanted: dict[int, None] = {}
        for event in events:
            if event.entity == webhooks.COMPANY:
                cid = int(event.record_id.partition(":")[2])
                self.forget_company(cid)
                for person in self.client.iterate(self.opts["person_limetype"], page_size=200,
                                                  filters=[(self.opts["company_relation"],
                                                            cid)]):
                    wanted[int(person["_id"])] = None
            elif event.entity == webhooks.CONSENT:
                pid = self._consent_person(event)
                if pid is not None:
                    wanted[int(pid)] = None
            elif (person_id := self.person_id(event.record_id)) is not None:
                wanted[person_id] = None
            else:
                self.log.warning("lime.event_unknown_key", record_id=event.record_id)
        key_of = self.keys.keys(wanted)
        ids = [key_of[i] for i in wanted]

        def read(pid: int) -> dict[str, Any] | None:
            with for_records([key_of[pid]]):  # syncd explain shows these calls
                return self.client.get(self.opts["person_limetype"], pid)

        found = self.pool_map(read, list(wanted))
        records = {r.id: r for r in self._records([p for p in found if p is not None], key_of)}
        return [records.get(i) or Record(i, deleted=True) for i in ids]

    def _consent_person(self, event: Event) -> str | None:
        """The person a consent message concerns, read back; None (discarded, logged,
        counted) when the consent has no person or no consent type."""
        cid = event.record_id.partition(":")[2]
        consent = self.client.get(self.opts["consent_limetype"], cid)
        if consent is not None:
            person = relation_id(consent.get(self.opts["consent_person_relation"]))
            ctype = relation_id(consent.get(self.opts["consent_type_relation"]))
        else:  # gone (consents are not deleted by the add-on's rules): the message's word
            person = event.data.get("person")  # its keys, its Lime id last (webhooks.py)
            person = relation_id(person[-1] if isinstance(person, list) else person)
            ctype = relation_id(event.data.get("consenttype"))
        if person is None or ctype is None:
            lacks = " or ".join(w for w, v in (("a person", person), ("a consent type", ctype))
                                if v is None)
            self.discard(f"consent without {lacks}", consent=cid,
                         lime_event=event.data.get("event"))
            return None
        return str(person)

    def discard(self, reason: str, **context: Any) -> None:
        self.ledger.count(DISCARDED, reason, **context)
        self.log.warning("lime.message_discarded", reason=reason,
                         fix="give the consent a person and a consent type in Lime; a full "
                             "sync repairs what was missed", **context)

    def _records(self, persons: Sequence[Mapping[str, Any]],
                 key_of: Mapping[int, str] | None = None) -> list[Record]:
        """The records of ``persons``, each under its key (``key_of``, else looked up)."""
        if key_of is None:
            key_of = self.keys.keys(int(p["_id"]) for p in persons)
        rel = self.opts["company_relation"]
        companies: dict[int, dict[str, Any] | None] = {}
        if self._needs_company():
            companies = self.company_values({c for p in persons
                                              if (c := relation_id(p.get(rel))) is not None})
        consents: dict[int, list[dict[str, Any]]] | None = None
        if self._needs_consents():
            consents = self.consents_for([int(p["_id"]) for p in persons], key_of)
        return [self.to_record(p, companies.get(relation_id(p.get(rel)) or -1),
                               None if consents is None else consents[int(p["_id"])],
                               record_key=key_of[int(p["_id"])])
                for p in persons]

    def to_record(self, person: Mapping[str, Any], company: Mapping[str, Any] | None,
                  consents: list[dict[str, Any]] | None, record_key: str | None = None
                  ) -> Record:
        fields = {k: v for k, v in person.items() if not k.startswith("_") and _scalar(v)}
        prefix = self._company_prefix()
        for key, value in (company or {}).items():
            if not key.startswith("_") and _scalar(value):
                fields[prefix + key] = value
        email = person.get(self.opts["email_property"])
        email = email.strip() if isinstance(email, str) and email.strip() else None
        labels: frozenset[str] = frozenset()
        times: dict[str, str] = {}
        error = None
        if consents is not None:
            try:
                labels, times = self.consent_labels(consents)
            except ConsentDataError as exc:  # never "no consent": that opts everyone out
                error = str(exc)
        rid = record_key if record_key is not None else self.keys.key(int(person["_id"]))
        return Record(id=rid,
                      fields=fields, email=email, labels=labels,
                      label_times=times, modified_at=person.get("_timestamp"), error=error)

    # -- overviews ---------------------------------------------------------------------------

    def read_group(self, name: str) -> list[str]:
        """The ids of the persons the overview's Lime filter (``groups``) returns."""
        groups = self.opts.get("groups") or {}
        if name not in groups:
            known = ", ".join(sorted(groups)) or "none"
            raise ValueError(f"no group {name!r} in this connection's groups option (known: "
                             f"{known}); add it as a Lime filter on persons")
        ids = [int(p["_id"]) for p in self.client.iterate(
            self.opts["person_limetype"], page_size=500, filters=group_filters(groups[name]))]
        return list(self.keys.keys(ids).values())

    # -- webhooks ----------------------------------------------------------------------------

    @classmethod
    def webhook_parser(cls, name: str, config: Mapping[str, Any]):
        opts = resolve_options(config)
        return webhooks.make_parser(
            opts.get("webhook_secret"),
            {webhooks.PERSON: opts["person_limetype"], webhooks.COMPANY: opts["company_limetype"],
             webhooks.CONSENT: opts["consent_limetype"]},
            {"person": opts["consent_person_relation"], "type": opts["consent_type_relation"]},
            connection=name, key_prefix=keys.prefix_of(opts))

    def wanted_events(self) -> list[str]:
        """The person's events; the company's that change mapped company fields; the
        consent's when consents are mapped."""
        events = [f"{self.opts['person_limetype']}.{w}" for w in WHATS]
        if self._needs_company():
            events += [f"{self.opts['company_limetype']}.{w}" for w in ("update", "delete",
                                                                         "restore")]
        if self._needs_consents():
            events += [f"{self.opts['consent_limetype']}.{w}" for w in WHATS]
        return events

    def ensure_webhook(self, url: str) -> str:
        """Find syncd's subscription for ``url`` and update it (events, secret, enabled),
        or create it; returns its id."""
        secret = self.opts.get("webhook_secret")
        if secret is None:
            raise SyncdError(f"connections.{self.name}.webhook_secret: required to register "
                             "the webhook subscription (fix: set webhook_secret, e.g. "
                             'webhook_secret = { env = "LIME_WEBHOOK_SECRET" })')
        body = {"events": self.wanted_events(), "target_url": url, "secret": secret.reveal(),
                "name": self.opts["subscription_name"], "enabled": True}
        mine = [s for s in self.client.subscriptions() if s.get("target_url") == url]
        if mine:
            sid = str(mine[0]["id"])
            self.client.update_subscription(sid, body)
            self.log.info("lime.subscription_updated", subscription=sid,
                          events=len(body["events"]))
        else:
            sid = str(self.client.subscribe(body)["id"])
            self.log.info("lime.subscription_created", subscription=sid,
                          events=len(body["events"]))
        self._hook = (url, sid)
        return sid
