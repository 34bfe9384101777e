"""Fixture data of the Tribe emulator (written straight into the store, no webhooks) and
``mutate``: realistic edits made through the HTTP API, so that webhooks fire."""

from __future__ import annotations

import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import requests

from syncd_tribe.emulator_store import FIELDS, SCORE_FIELD, Store, fmt_time

if TYPE_CHECKING:
    from syncd_tribe.emulator import TribeEmulator

FIRST = ("Anna", "Bram", "Carla", "Daan", "Eva", "Femke", "Gijs", "Hanna", "Inge", "Joost",
         "Kees", "Lotte", "Maarten", "Noor", "Olaf", "Pien", "Quinten", "Roos", "Sanne", "Thijs",
         "Ursula", "Vera", "Willem", "Xander", "Yara", "Zoë", "Ömer", "José", "Siobhán", "Łukasz")
MIDDLE = (None, None, None, "van", "de", "van der", "van den", "ter")
LAST = ("Jansen", "de Vries", "Bakker", "Visser", "Smit", "Meijer", "Mulder", "Bos", "Vos",
        "Peters", "Hendriks", "Dekker", "Brouwer", "O'Neill", "Dijkstra", "Kok", "Jacobs")
ORG_WORDS = ("Acme", "Noord", "Delta", "Polder", "Tulip", "Orange", "Canal", "Windmill",
             "Harbour", "Dune", "Efficy", "Beacon")
ORG_KINDS = ("B.V.", "Holding", "Groep", "& Zn.", "Consultancy", "Logistics")
DEPARTMENTS = ("Sales", "Marketing", "Finance", "IT", "Operations", "Support", None)
ROLES = ("Manager", "Director", "Consultant", "Engineer", "Assistant", "Buyer", None)
LABELS = ("Newsletter", "Events", "Webinars", "SMS offers")
LABEL_ODDS = (0.6, 0.3, 0.2, 0.15)
CONTACT = "Relationship_Person_Contact_Standard"
BASE_TIME = datetime(2024, 1, 1, tzinfo=UTC)


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def setup_identity(store: Store) -> str:
    """The own organisation, its identity and the virtual user's employee record."""
    stamp = fmt_time(BASE_TIME - timedelta(days=365))
    org = store.put("Relation_Organization", {"ID": "00000000-0000-4000-8000-000000000001",
                                              "Name": "Sandbox B.V."}, stamp=stamp)
    store.put("Relationship_Organization_Identity", {
        "ID": "00000000-0000-4000-8000-000000000002", "Name": "Sandbox B.V."},
        {"Relation": org["ID"]}, stamp=stamp)
    person = store.put("Relation_Person", {"ID": "00000000-0000-4000-8000-000000000003",
                                           "FirstName": "syncd", "LastName": "Integration"},
                       stamp=stamp)
    employee = store.put("Relationship_Person_Contact_Employee", {
        "ID": "00000000-0000-4000-8000-000000000004", "EmailAddress": "syncd@sandbox.test",
        "Role": "Integration"}, {"Person": person["ID"], "Relation": org["ID"]}, stamp=stamp)
    return employee["ID"]


def seed_store(store: Store, count: int, seed: int = 0) -> None:
    rng = random.Random(f"tribe-{seed}")
    # the persons' former flag, where the account has one: no one is former at first
    former = {name: False for name in store.fields["Relation_Person"]
              if name not in FIELDS["Relation_Person"]}
    labels = [store.put("Label", {"ID": _uuid(rng), "Name": name},
                        stamp=fmt_time(BASE_TIME))["ID"] for name in LABELS]
    orgs = []
    for i in range(max(1, count // 10) if count else 0):
        name = f"{rng.choice(ORG_WORDS)} {rng.choice(ORG_WORDS)} {rng.choice(ORG_KINDS)}"
        orgs.append(store.put("Relation_Organization", {
            "ID": _uuid(rng), "Name": name, "PhoneNumber": f"+31 20 {rng.randrange(10**6):06d}",
            "EmailAddress": f"info@org{i}.example", "Website": f"https://org{i}.example"},
            stamp=fmt_time(BASE_TIME + timedelta(seconds=i)))["ID"])
    for i in range(count):
        stamp = fmt_time(BASE_TIME + timedelta(minutes=i))
        first, middle, last = rng.choice(FIRST), rng.choice(MIDDLE), rng.choice(LAST)
        handle = f"{first}.{last}".lower().replace(" ", "").replace("'", "")
        person = store.put("Relation_Person", {
            "ID": _uuid(rng), "FirstName": first, "MiddleName": middle, "LastName": last,
            "Initials": first[0] + ".", "EmailAddress": f"{handle}{i}@private.example",
            "PhoneNumber": f"+31 6 {rng.randrange(10**8):08d}",
            "BirthDate": (datetime(1950, 1, 1) + timedelta(days=rng.randrange(18_000)))
            .date().isoformat(),
            SCORE_FIELD: rng.randrange(101), "ImportId": f"seed-{seed}-{i}", **former,
        }, {"Labels": [lab for lab, odds in zip(labels, LABEL_ODDS, strict=True)
                       if rng.random() < odds]}, stamp=stamp)
        oi = rng.randrange(len(orgs))
        store.put(CONTACT, {
            "ID": _uuid(rng), "EmailAddress": f"{handle}{i}@work{oi % 97}.example"
            if rng.random() < 0.9 else None,
            "PhoneNumber": f"+31 20 {rng.randrange(10**6):06d}",
            "Department": rng.choice(DEPARTMENTS), "Role": rng.choice(ROLES),
            "CustomerType": rng.choice("AAABBC"), "IsFormer": False,
        }, {"Person": person["ID"], "Relation": orgs[oi]}, stamp=stamp)


# -- mutate: through the API ---------------------------------------------------------------------


def _call(session: requests.Session, method: str, url: str, **kwargs) -> requests.Response:
    """One API call, retried on 429/5xx (the emulator's faults apply to it too)."""
    for attempt in range(8):
        response = session.request(method, url, timeout=10, **kwargs)
        if response.status_code not in (429, 500, 502, 503, 504):
            response.raise_for_status()
            return response
        delay = float(response.headers.get("Retry-After") or 0.1 * 2 ** attempt)
        time.sleep(min(delay, 5.0))
    response.raise_for_status()
    return response


def mutate(emu: TribeEmulator, rng: random.Random) -> str:
    """One realistic change through the HTTP API with the emulator's own credentials."""
    with emu.lock:
        persons = emu.store.ids_of("Relation_Person")[1:]  # [0] is the virtual user
        contacts = emu.store.ids_of(CONTACT)
        orgs = emu.store.ids_of("Relation_Organization")[1:]
        labels = {emu.store.entities[i]["Name"]: i for i in emu.store.ids_of("Label")}
    session = emu.api_session()
    base = f"{emu.url}/v1/odata"
    former = emu.person_former_field
    choice = rng.choice(("name", "customer_type", "email", "label", "create")
                        + (("former",) if former else ())) if persons and contacts else "create"
    try:
        if choice == "name":
            pid = rng.choice(persons)
            name = rng.choice(FIRST)
            _call(session, "PUT", f"{base}/Relation_Person({pid})", json={"FirstName": name})
            return f"person {pid}: FirstName -> {name}"
        if choice == "customer_type":
            cid = rng.choice(contacts)
            value = rng.choice("ABC")
            _call(session, "PUT", f"{base}/{CONTACT}({cid})", json={"CustomerType": value})
            return f"contact {cid}: CustomerType -> {value}"
        if choice == "email":
            cid = rng.choice(contacts)
            value = f"changed{rng.randrange(10**6)}@work.example"
            _call(session, "PUT", f"{base}/{CONTACT}({cid})", json={"EmailAddress": value})
            return f"contact {cid}: EmailAddress -> {value}"
        if choice == "former" and former:  # a person marked former, or no longer
            pid = rng.choice(persons)
            flag = not _call(session, "GET", f"{base}/Relation_Person({pid})",
                             params={"$select": f"ID,{former}"}).json().get(former)
            _call(session, "PUT", f"{base}/Relation_Person({pid})", json={former: flag})
            return f"person {pid}: {former} -> {flag}"
        if choice == "label" and labels:
            pid = rng.choice(persons)
            current = _call(session, "GET", f"{base}/Relation_Person({pid})",
                            params={"$select": "ID", "$expand": "Labels($select=ID,Name)"}
                            ).json().get("Labels", [])
            names = {lab["Name"] for lab in current}
            name = rng.choice(sorted(labels))
            names ^= {name}
            _call(session, "PUT", f"{base}/Relation_Person({pid})",
                  json={"Labels": [{"ID": labels[n]} for n in sorted(names)]})
            return f"person {pid}: label {name} {'added' if name in names else 'removed'}"
        if not orgs:
            org = _call(session, "POST", f"{base}/Relation_Organization",
                        json={"Name": "New Org B.V."}).json()["ID"]
        else:
            org = rng.choice(orgs)
        first, last = rng.choice(FIRST), rng.choice(LAST)
        n = rng.randrange(10**6)
        created = _call(session, "POST", f"{base}/{CONTACT}", json={
            "Person": {"FirstName": first, "LastName": last,
                       "EmailAddress": f"new{n}@private.example"},
            "Relation": {"ID": org}, "EmailAddress": f"new{n}@work.example",
            "CustomerType": rng.choice("ABC"), "IsFormer": False}).json()
        return f"new person {first} {last} with contact {created['ID']}"
    finally:
        session.close()
