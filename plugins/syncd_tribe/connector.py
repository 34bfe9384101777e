"""The Tribe CRM connector: persons (with their contact at an organisation) as records.

A record is a Tribe person (``Relation_Person``). Its fields are flat, dotted paths:

- the person's own fields as the API returns them (``FirstName``, ``EmailAddress``,
  ``BirthDate``, custom fields ``_<uuid>`` ...);
- ``Contact.<Field>``: the person's contact relationship (``contact_set``: business e-mail,
  phone, department, role ...);
- ``Contact.Organization.<Field>``: that contact's organisation (the ``Relation`` nav).

A person with several contacts: the one chosen is the one not marked former
(``former_field``), then the most recently mutated, then the highest ID (deterministic).
A person marked former itself (its "Former" status; the API name is a GAP, ``IsFormer`` where
the account has it) is a record like any other, with the flag among its fields: a sync
condition may use it (``IsFormer = false``); marking a person former never deletes its
profile (it stops matching such a condition, seed 001; deleting needs ``delete_unmatched``).
Labels (``labels_nav``) become ``Record.labels`` and also ``Record.selections`` (Tribe's
selections are built on labels; their own API is a GAP): see :mod:`syncd_tribe.labels`, which
also writes opt-in labels (``write_consents``). ``Record.email`` is the first
non-empty of ``email_fields``; ``Record.modified_at`` is the later ``LastMutationDate`` of the
person and the chosen contact.

"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
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
    carry_context,
    connection_key,
    for_records,
)
from syncd_tribe import schema, webhooks
from syncd_tribe.activities import Activities
from syncd_tribe.client import TribeClient, any_of, literal
from syncd_tribe.groups import Groups
from syncd_tribe.labels import LabelDataError, Labels
from syncd_tribe.odata import parse_datetime
from syncd_tribe.options import OPTIONS, resolve_options
from syncd_tribe.paging import PageState, next_page

#: Raw characters of one ``ID eq a or ID eq b ...`` filter: keeps URLs well under 8 KB.
FILTER_BUDGET = 4000
CONTACT_PAGE = 1000

def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _chunks(ids: list[str], path: str) -> Iterable[list[str]]:
    """Groups of ids whose ``path eq a or ...`` filter stays within FILTER_BUDGET."""
    chunk: list[str] = []
    size = 0
    for eid in ids:
        clause = len(path) + len(literal(eid)) + 8
        if chunk and size + clause > FILTER_BUDGET:
            yield chunk
            chunk, size = [], 0
        chunk.append(eid)
        size += clause
    if chunk:
        yield chunk


class TribeConnector(Activities, Groups, Labels, PooledClient[TribeClient], Connector):
    kind: ClassVar[str] = "tribe"
    description = "Tribe CRM: persons and their contacts, real-time through webhooks"
    capabilities = frozenset({Capability.READ_RECORDS, Capability.PARSE_WEBHOOKS,
                              Capability.WRITE_CONSENTS, Capability.READ_GROUPS,
                              Capability.CHECK_SCHEMA, Capability.READ_RECORD,
                              Capability.WRITE_RESPONSES, Capability.CREATE_TASKS})
    options = OPTIONS
    emulator = "syncd_tribe.emulator:TribeEmulator"
    #: Thread-safe (a bulk and a real-time lane): the client is stateless over the shared
    #: HttpClient (budget, holds, token under locks), the label ids are under their lock,
    #: ``needs`` is only replaced; each lane fetches through its own worker pool.
    two_lanes = True

    def __init__(self, name: str, config: Mapping[str, Any]):
        super().__init__(name, config)
        self.opts = resolve_options(config)
        self._label_ids: dict[str, str] | None = None  # label name -> id
        #: unknown label name -> when it last made us reload the label list
        self._refreshed_for: dict[str, float] = {}
        self._labels_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"TribeConnector({self.name!r}, base_url={self.opts['base_url']!r})"

    # -- life cycle --------------------------------------------------------------------------

    def make_client(self) -> TribeClient:
        return TribeClient(self.opts, name=self.name)

    def check(self) -> dict[str, Any]:
        employee = self.client.call("GetCurrentEmployee()", select=["ID", "_Name"])
        return {"base_url": self.opts["base_url"], "employee": employee.get("_Name"),
                "employee_id": employee.get("ID")}

    def check_schema(self, needs: SchemaNeeds) -> list[SchemaProblem]:
        """The config against ``$metadata``, the labels and the groups: see
        :mod:`syncd_tribe.schema`."""
        return schema.check(self, needs)

    def stats(self) -> dict[str, Any]:
        if self._client is None:
            return {"requests": 0, "retries": 0, "token_fetches": 0}
        return self._client.stats()

    @classmethod
    def validate(cls, name: str, config: Mapping[str, Any]) -> list[str]:
        opts = resolve_options(config)
        problems = []
        if opts["auth"] == "client_credentials":
            if not opts["client_id"]:
                problems.append('client_id: required when auth = "client_credentials" (fix: '
                                'set client_id to the Tribe application\'s client id)')
            if opts["client_secret"] is None:
                problems.append('client_secret: required when auth = "client_credentials" '
                                '(fix: set client_secret, e.g. client_secret = '
                                '{ env = "TRIBE_CLIENT_SECRET" })')
        elif opts["auth"] == "token" and opts["token"] is None:
            problems.append('token: required when auth = "token" (fix: set token, e.g. '
                            'token = { env = "TRIBE_TOKEN" })')
        if not opts["email_fields"]:
            problems.append('email_fields: names no field (fix: email_fields = '
                            '["Contact.EmailAddress", "EmailAddress"])')
        if not opts["webhook_entity_types"]:
            problems.append('webhook_entity_types: names no entity type (fix: '
                            'webhook_entity_types = ["Relation.Person", '
                            '"Relationship.Person.Contact.Standard"])')
        return problems

    @classmethod
    def validate_needs(cls, name: str, config: Mapping[str, Any], needs: SchemaNeeds
                       ) -> list[SchemaProblem]:
        """Consent and selection mappings read labels: ``labels_nav = ""`` (no labels) with
        them would read every person as having none, i.e. opt everyone out."""
        labels = needs.of(NeedKind.LABEL) if needs.as_source else ()
        if not labels or resolve_options(config)["labels_nav"]:
            return []
        users = ", ".join(sorted({n.key for n in labels})[:3])
        return [SchemaProblem(
            key=connection_key(name, "labels_nav"),
            message=f'is "" (no labels), but {users} map{"s" if len(labels) == 1 else ""} '
                    f"labels: every person would read as having none, which opts everyone "
                    f"out",
            fix='set labels_nav to the navigation from a person to its labels (e.g. '
                '"LabelAssignments", or "Labels" with label_link_label_nav = ""; see '
                "$metadata), or remove the consent and selection mappings")]

    # -- sandbox -----------------------------------------------------------------------------

    @classmethod
    def sandbox_config(cls, emulator: Any) -> dict[str, Any]:
        return {"kind": cls.kind, "base_url": emulator.url,
                "token_url": f"{emulator.url}/oauth2/token", "auth": "client_credentials",
                "client_id": emulator.client_id, "client_secret": emulator.client_secret,
                "webhook_secret": emulator.webhook_secret,
                "signature_header": emulator.signature_header,
                "requests_per_second": 500.0, "concurrency": 4}

    @classmethod
    def sandbox_rules(cls) -> dict[str, Any]:
        return {
            "conditions": {"Contact.CustomerType": "A"},
            "fields": {"FirstName": "firstname", "LastName": "lastname",
                       "Contact.Organization.Name": "company"},
            "consents": [{"label": "Newsletter", "topic": "com.apsis1.topics.newsletter",
                          "channel": "email"}],
            "selections": {"Events": "events"},
            # response data and tasks (seed 000); the task's fallback is the emulator's
            # own employee (GetCurrentEmployee)
            "response_events": ["email_opened", "email_clicked", "email_bounced",
                                "email_unsubscribed", "sms_clicked"],
            "tasks_secret": "sandbox-task-secret",
            "task_fallback_employee": "00000000-0000-4000-8000-000000000004",
        }

    # -- reading -----------------------------------------------------------------------------

    # What the integrations need (``set_needs``; None: not told, read everything): labels
    # only for consent and selection mappings, the contact and its organisation only when a
    # field path (conditions, field mappings, email_fields) reaches them. An $expand of a
    # navigation the account lacks is a 400, so what no rule uses is never asked for.

    def _needs_labels(self) -> bool:
        return self.needs is None or bool(self.needs.of(NeedKind.LABEL))

    def _field_paths(self) -> list[str] | None:
        if self.needs is None:
            return None
        return [n.name for n in self.needs.of(NeedKind.FIELD)] + list(self.opts["email_fields"])

    def _needs_path(self, prefix: str) -> bool:
        paths = self._field_paths()
        return paths is None or any(p.startswith(prefix) for p in paths)

    def _person_expand(self) -> str | None:
        return self.label_expand() if self._needs_labels() else None

    def read_page(self, cursor: str | None, page_size: int, since: str | None = None) -> Page:
        """Persons ordered by ID, ``page_size`` asked for at a time, joined with their
        contacts; paged as :mod:`syncd_tribe.paging` says (a short page is not the end: only
        an empty one is). Every page asks for ``$count`` and gives it as ``Page.total`` (the
        run compares what it processed with the smallest count it was given).
        The cursor is a :class:`~syncd_tribe.paging.PageState`."""
        state = PageState.decode(cursor)
        flt = None
        if since:
            ts = literal(parse_datetime(since))
            flt = f"LastMutationDate ge {ts} or CreationDate ge {ts}"

        def query(skip: int) -> dict[str, Any]:
            return self.client.query(self.opts["person_set"], orderby="ID", top=page_size,
                                     skip=skip, filter=flt, expand=self._person_expand(),
                                     count=True)

        persons, data, nxt = next_page(state, query, self.client.follow,
                                       what=self.opts["person_set"])
        total = data.get("@odata.count")
        records = self._join(persons)
        return Page(tuple(records), nxt.encode() if nxt is not None else None,
                    total=int(total) if isinstance(total, int | str) and str(total).isdigit()
                    else None)

    def read_records(self, events: list[Event]) -> list[Record]:
        """Read back what webhook events name; a relationship event is resolved to its person.
        A person that no longer exists comes back as ``Record(id, deleted=True)``."""
        relationship_ids = list(dict.fromkeys(e.record_id.lower() for e in events
                                              if e.entity == webhooks.RELATIONSHIP))
        person_of: dict[str, str] = {}
        if relationship_ids:
            for contact in self._fetch(self.opts["contact_set"], "ID", relationship_ids,
                                       select=["ID"], expand="Person($select=ID)"):
                person = contact.get("Person") or {}
                if person.get("ID"):
                    person_of[str(contact["ID"]).lower()] = str(person["ID"]).lower()
            gone = len(relationship_ids) - len(person_of)
            if gone:
                # a deleted relationship cannot be tied to its person any more (the webhook
                # carries ids only); the person's next change or a full sync repairs it
                self.log.info("tribe.relationships_unresolved", count=gone)
        wanted: dict[str, None] = {}
        for event in events:
            rid = event.record_id.lower()
            if event.entity != webhooks.RELATIONSHIP:
                wanted[rid] = None
            elif rid in person_of:
                wanted[person_of[rid]] = None
        ids = list(wanted)
        persons = self._fetch(self.opts["person_set"], "ID", ids,
                              expand=self._person_expand())
        records = {r.id: r for r in self._join(persons)}
        return [records.get(i) or Record(i, deleted=True) for i in ids]

    def read_record(self, record_id: str) -> Record | None:
        """One person read directly by its key (``Person(<id>)``), not through a listing:
        ``None`` only when Tribe answers 404 (the core deletes a profile only then)."""
        with for_records([record_id.lower()]):
            person = self.client.get(self.opts["person_set"], record_id.lower(),
                                     expand=self._person_expand())
        if person is None:
            return None
        records = self._join([person])
        return records[0] if records else None

    def _fetch(self, entity_set: str, path: str, ids: list[str], **options: Any
               ) -> list[dict[str, Any]]:
        """Every entity whose ``path`` is one of ``ids``, in URL-sized chunks, concurrently."""
        if not ids:
            return []

        def one(chunk: list[str]) -> list[dict[str, Any]]:
            # by person id: a read-back's calls are for these records (syncd explain)
            with for_records(chunk if path in ("ID", "Person/ID") else ()):
                return list(self.client.iterate(entity_set, page_size=CONTACT_PAGE,
                                                filter=any_of(path, chunk), **options))

        chunks = list(_chunks(ids, path))
        if len(chunks) == 1 or self._pool is None:
            return [e for c in chunks for e in one(c)]
        return [e for part in self._pool.map(carry_context(one), chunks) for e in part]

    def _join(self, persons: list[dict[str, Any]]) -> list[Record]:
        ids = [str(p["ID"]).lower() for p in persons if p.get("ID")]
        by_person: dict[str, list[dict[str, Any]]] = {}
        if not self._needs_path("Contact."):
            ids = []
        expand = "Relation,Person($select=ID)" if self._needs_path("Contact.Organization.") \
            else "Person($select=ID)"
        for contact in self._fetch(self.opts["contact_set"], "Person/ID", ids, expand=expand):
            pid = str((contact.get("Person") or {}).get("ID") or "").lower()
            by_person.setdefault(pid, []).append(contact)
        return [self.to_record(p, self.choose_contact(by_person.get(str(p["ID"]).lower(), [])))
                for p in persons if p.get("ID")]

    def choose_contact(self, contacts: list[dict[str, Any]]) -> dict[str, Any] | None:
        """Not former first, then the most recently mutated, then the highest ID."""
        if not contacts:
            return None
        former = self.opts["former_field"]
        return max(contacts, key=lambda c: (not c.get(former), c.get("LastMutationDate") or "",
                                            str(c.get("ID") or "")))

    def to_record(self, person: Mapping[str, Any], contact: Mapping[str, Any] | None) -> Record:
        fields: dict[str, Any] = {k: v for k, v in person.items()
                                  if _scalar(v) and not k.startswith("@")}
        modified = person.get("LastMutationDate")
        if contact:
            for key, value in contact.items():
                if key == "Relation" and isinstance(value, Mapping):
                    for k, v in value.items():
                        if _scalar(v) and not k.startswith("@"):
                            fields[f"Contact.Organization.{k}"] = v
                elif _scalar(value) and not key.startswith("@"):
                    fields[f"Contact.{key}"] = value
            if (contact.get("LastMutationDate") or "") > (modified or ""):
                modified = contact.get("LastMutationDate")
        labels: frozenset[str] = frozenset()
        label_times: dict[str, str] = {}
        error = None
        if self._needs_labels():  # else no rule reads them: they were not asked for
            try:
                labels, label_times = self.read_labels(person)
            except LabelDataError as exc:  # never "no labels": that would opt everyone out
                error = str(exc)
        email = None
        for path in self.opts["email_fields"]:
            value = fields.get(path)
            if isinstance(value, str) and value.strip():
                email = value.strip()
                break
        return Record(id=str(person["ID"]).lower(), fields=fields, email=email, labels=labels,
                      label_times=label_times, selections=labels, modified_at=modified,
                      error=error)

    # -- webhooks ----------------------------------------------------------------------------

    @classmethod
    def webhook_parser(cls, name: str, config: Mapping[str, Any]):
        opts = resolve_options(config)
        return webhooks.make_parser(opts["webhook_secret"], opts["signature_header"],
                                    opts["webhook_entity_types"], connection=name)

    def ensure_webhook(self, url: str) -> str:
        """Register ``url`` for every ``webhook_entity_types`` entry that lacks it (with the
        configured ``webhook_secret``); returns the webhook ids, comma-separated."""
        secret = self.opts["webhook_secret"]
        if secret is None:
            raise SyncdError(f"connections.{self.name}.webhook_secret: required to register "
                             "webhooks (fix: set webhook_secret, e.g. webhook_secret = "
                             '{ env = "TRIBE_WEBHOOK_SECRET" })')
        existing = self.client.webhooks()
        ids = []
        for entity_type in self.opts["webhook_entity_types"]:
            match = next((w for w in existing if w.get("url") == url
                          and w.get("entityType") == entity_type), None)
            if match is None:
                match = self.client.create_webhook(url, entity_type, secret)
                self.log.info("tribe.webhook_created", entity_type=entity_type,
                              webhook=match.get("id"))
            ids.append(str(match.get("id")))
        return ",".join(ids)
