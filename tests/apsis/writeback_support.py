"""A CRM emulator (Tribe or Lime) synced into the APSIS emulator by a real coordinator over real
connection actors and a real SQLite file, with the controls the write-back tests need: CRM
changes made through the emulators, their webhooks put in the inbox (``arrive``) and applied
(``deliver``) when the test says, and the consent poll run when the test says (``poll``)."""

from __future__ import annotations

import datetime as dt
import json
import uuid

from syncd_apsis.connector import ApsisConnector
from syncd_lime.connector import LimeConnector
from syncd_lime.keys import derived_prefix
from syncd_lime.webhooks import sign
from syncd_tribe.connector import TribeConnector

from syncd.config.model import Condition, ConsentMapping, IntegrationConfig
from syncd.connectors.connection import ConnectionActor
from syncd.engine.coordinator import Coordinator, Progress
from syncd.engine.rules import Rules
from syncd.engine.store import Store
from syncd.records import Event
from syncd.testing import wait_for

TOPIC = "com.apsis1.topics.newsletter"
NEWSLETTER = ConsentMapping("Newsletter", TOPIC, "email")


def parse(text: str) -> dt.datetime:
    when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


class TribeSide:
    """The person's Newsletter label in the Tribe emulator."""

    name = "tribe"

    def __init__(self, emu, person: str | None = None, **options):
        self.emu = emu
        self.pid = person or self._person()
        self.key = self.pid.lower()
        self.connector = TribeConnector("crm", {**TribeConnector.sandbox_config(emu),
                                                "requests_per_second": 0.0, **options})
        self.integration = IntegrationConfig(
            "tribe", "crm", "apsis", conditions=(Condition("Contact.CustomerType", "A"),),
            fields={"FirstName": "firstname"}, consents=(NEWSLETTER,), max_attempts=1)

    def _person(self) -> str:
        a_persons = {str(c["Person"]["ID"]) for c in self.emu.contacts()
                     if c.get("CustomerType") == "A" and c.get("Person")}
        for person in self.emu.persons()[1:]:  # [0] is the API's virtual user
            names = {lab["Name"] for lab in person["Labels"]}
            if str(person["ID"]) in a_persons and "Newsletter" not in names:
                return str(person["ID"])
        raise AssertionError("the seed has no such person")

    def opted_in(self) -> bool:
        return "Newsletter" in {lab["Name"] for lab in self.emu.person(self.pid)["Labels"]}

    def opt(self, on: bool) -> dt.datetime | None:
        """A user sets or removes the label through Tribe's API; when it was set."""
        ids = {lab["Name"]: lab["ID"] for lab in self.emu.labels()}
        names = {lab["Name"] for lab in self.emu.person(self.pid)["Labels"]}
        names = names | {"Newsletter"} if on else names - {"Newsletter"}
        with self.emu.api_session() as session:
            session.put(f"{self.emu.url}/v1/odata/Relation_Person({self.pid})", timeout=10,
                        json={"Labels": [{"ID": ids[n]} for n in sorted(names)]}
                        ).raise_for_status()
        return parse(self.emu.label_times(self.pid)["Newsletter"]) if on else None

    def opt_in_again(self) -> dt.datetime:
        """A new opt-in: the label removed and set again (a new label link)."""
        self.opt(False)
        when = self.opt(True)
        assert when is not None
        return when

    def event(self) -> Event:
        return Event(self.pid.lower())


class LimeSide:
    """The person's Newsletter consent in the Lime emulator (the consent add-on)."""

    name = "lime"

    def __init__(self, emu, person: int | None = None, **options):
        self.emu = emu
        self.kind = next(t["_id"] for t in emu.store.objects["consenttype"].values()
                         if t["title"] == "Newsletter")
        self.pid = person if person is not None else self._person()
        self.key = f"{derived_prefix(emu.url)}{self.pid}"  # the instance's prefix, the id
        self.connector = LimeConnector("crm", {**LimeConnector.sandbox_config(emu), **options})
        self.integration = IntegrationConfig(
            "lime", "crm", "apsis", conditions=(Condition("customertype", "A"),),
            fields={"firstname": "firstname"}, consents=(NEWSLETTER,), max_attempts=1)
        self._last: dict | None = None

    def _person(self) -> int:
        for pid, person in sorted(self.emu.store.objects["person"].items()):
            if person["customertype"] == "A" and person["email"] and not any(
                    c["consenttype"] == self.kind for c in self.emu.consents_of(pid)):
                return pid
        raise AssertionError("the seed has no such person")

    def _newest(self) -> dict | None:
        mine = [c for c in self.emu.consents_of(self.pid) if c["consenttype"] == self.kind]
        return max(mine, key=lambda c: (c["date"], c["_id"])) if mine else None

    def opted_in(self) -> bool:
        newest = self._newest()
        return bool(newest and newest["approved"])

    def opt(self, on: bool) -> dt.datetime:
        """A user gives or withdraws the consent in Lime: a newer consent object."""
        now = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
        self._last = self.emu.create("consent", {"person": self.pid, "consenttype": self.kind,
                                                 "approved": on, "date": now})
        return parse(now)

    def opt_in_again(self) -> dt.datetime:
        return self.opt(True)

    def event(self) -> Event:
        """Lime's consent webhook, as the connector's parser reads it: names the consent,
        with its person (by the keys it may have) in the data."""
        cid = self._last["_id"] if self._last else 0
        body = json.dumps({"event": "consent.update", "body": {
            "id": cid, "limetype": "consent",
            "values": {"person": self.pid, "consenttype": self.kind}}}).encode()
        parse = LimeConnector.webhook_parser("crm", self.connector.config)
        [event] = parse({"X-Lime-Signature": sign(self.emu.webhook_secret, body)}, body)
        return event


class Sync:
    """One integration from a CRM side into the APSIS emulator."""

    def __init__(self, path, apsis, side):
        self.apsis, self.side, self.integration = apsis, side, side.integration
        self.store = Store(str(path / f"{uuid.uuid4().hex}.db"))
        dst = {**ApsisConnector.sandbox_config(apsis), "consent_poll_overlap": 0.0,
               "export_poll_interval": 0.02}
        dst.pop("kind")
        self.refs = {"crm": ConnectionActor.start(side.connector),
                     "apsis": ConnectionActor.start(ApsisConnector("apsis", dst))}
        caps = {"source": type(side.connector).capabilities,
                "destination": ApsisConnector.capabilities}
        rules = Rules.from_integration(self.integration, ApsisConnector.canonical_attribute)
        self.ref = Coordinator.start(self.integration, rules, self.store,
                                     lambda n: self.refs[n].proxy(), progress=Progress(),
                                     capabilities=caps)
        self.coord = self.ref.proxy()
        self.poll()  # the first read of the consent changes starts from now

    def stop(self) -> None:
        self.ref.stop(timeout=10)
        for ref in self.refs.values():
            ref.stop(timeout=10)
        self.store.close()

    @property
    def name(self) -> str:
        return self.integration.name

    def arrive(self) -> None:
        """The CRM's webhook of the last change reaches the inbox; the coordinator is not
        told, so it stays there, not applied, until :meth:`deliver`."""
        self.store.enqueue([(self.name, "crm", self.side.event())])

    def deliver(self) -> None:
        """The coordinator applies what waits in the inbox."""
        self.coord.notify().get(timeout=5)
        assert wait_for(lambda: self.store.pending_count(self.name) == 0, 20)
        self.coord.ping().get(timeout=30)  # and what the drain told itself after it

    def poll(self) -> None:
        """The consent job: read APSIS' opt-outs, check them against the CRM, write back."""
        self.coord.run_job("consent_changes", {}).get(timeout=30)
        self.coord.ping().get(timeout=30)

    def poll_past(self, row: dict) -> None:
        """Consent polls until one read the window holding the unsubscribe ``row``."""
        def read() -> bool:
            cursor = self.store.cursor(self.name, "consent_changes")
            return cursor is not None and parse(cursor).timestamp() * 1000 > row["server_time"]
        assert wait_for(lambda: self.poll() or read(), 20)

    def unsubscribe(self) -> dict:
        """The person unsubscribes in APSIS (now); its export row."""
        return self.apsis.unsubscribe(self.side.key, TOPIC, duplicate=False, zero_time=False)

    def apsis_opted_in(self) -> bool | None:
        state = self.apsis.consents(self.side.key).get((TOPIC, self.apsis.channel_discriminators[0]))
        return None if state is None else state == "opt-in"

    def optin_synced(self) -> dt.datetime | None:
        """The person opted in in the CRM, and that synced to APSIS; when it was given."""
        when = self.side.opt(True)
        self.arrive()
        self.deliver()
        assert self.apsis_opted_in() is True
        return when
