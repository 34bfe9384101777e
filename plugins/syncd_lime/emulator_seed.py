"""Fixtures of the Lime emulator: seeded persons, companies and consents, and random edits
made through the public API (so that webhooks fire as for a user's edit in Lime)."""

from __future__ import annotations

import datetime as dt
import random
from typing import TYPE_CHECKING

from syncd_lime.emulator_store import Store

if TYPE_CHECKING:
    from syncd_lime.emulator import LimeEmulator

FIRST = ["Anna", "Björn", "Cecilia", "David", "Emma", "Filip", "Greta", "Hugo", "Ida", "Johan",
         "Karin", "Lars", "Maja", "Nils", "Olivia", "Per", "Sara", "Tove", "Ulf", "Vera"]
LAST = ["Andersson", "Berg", "Carlsson", "Dahl", "Ek", "Forsberg", "Gustafsson", "Holm",
        "Isaksson", "Johansson", "Karlsson", "Lind", "Månsson", "Nilsson", "Olsson"]
CITIES = ["Lund", "Malmö", "Stockholm", "Göteborg", "Uppsala"]
POSITIONS = ["CEO", "CTO", "Buyer", "Marketing", "Sales", None]
#: The consent types seeded (titles), the first one mapped by the sandbox.
CONSENT_TYPES = ("Newsletter", "SMS offers", "Events")


def _date(rng: random.Random, days: int = 900) -> str:
    when = dt.datetime(2024, 1, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=rng.randrange(
        days * 24 * 60))
    return when.isoformat()


def seed_store(store: Store, count: int, seed: int = 0) -> None:
    """``count`` persons at ``count // 10`` companies; where the consent add-on is installed,
    three consent types and consents for most persons (some opted out; a few with an older
    consent of the same type too, which the newer one overrides)."""
    rng = random.Random(seed)
    companies = [store.create("company", {"name": f"{rng.choice(LAST)} {kind} {i}",
                                          "phone": f"+46 40 {rng.randrange(100000, 999999)}",
                                          "orgnumber": f"55{rng.randrange(10**7, 10**8)}",
                                          "city": rng.choice(CITIES)})["_id"]
                 for i, kind in enumerate(["AB", "HB", "Konsult"] * max(1, count // 30 + 1))
                 if i < max(1, count // 10)]
    addon = "consenttype" in store.limetypes
    types = [store.create("consenttype", {"title": t, "description": f"{t} by e-mail",
                                          "active": True, "default": False, "readonly": False}
                          )["_id"] for t in CONSENT_TYPES] if addon else []
    for _ in range(2):
        store.create("coworker", {"firstname": rng.choice(FIRST), "lastname": rng.choice(LAST),
                                  "email": None, "username": f"cw{rng.randrange(1000)}"})
    for i in range(count):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        person = store.create("person", {
            "firstname": first, "lastname": last,
            "email": f"{first.lower()}.{last.lower()}.{i}@lime.example".replace("ö", "o")
            .replace("å", "a").replace("ä", "a") if rng.random() > 0.03 else None,
            "phone": f"+46 70 {rng.randrange(1000000, 9999999)}",
            "mobilephone": None, "position": rng.choice(POSITIONS),
            "customertype": "A" if rng.random() < 0.7 else "B",
            "company": rng.choice(companies) if rng.random() < 0.9 else None})
        person["_createdtime"] = _date(rng)  # seeded data was made before today
        person["_timestamp"] = max(person["_createdtime"], _date(rng))
        if not addon:
            continue
        for type_id in types:
            roll = rng.random()
            if roll < 0.4:
                continue
            when = _date(rng)
            if roll > 0.93:  # an older consent of the same type: the newer one wins
                store.create("consent", {"approved": not roll > 0.965, "date": _date(rng, 300),
                                         "note": "older", "source": "coworker",
                                         "consenttype": type_id, "person": person["_id"]})
                when = (dt.datetime.fromisoformat(when) + dt.timedelta(days=400)).isoformat()
            store.create("consent", {"approved": roll < 0.8, "date": when, "note": None,
                                     "source": "web", "consenttype": type_id,
                                     "person": person["_id"]})


def mutate(emulator: LimeEmulator, rng: random.Random) -> str:
    """One edit through the public API: a changed person, a new person, or a company
    renamed (its persons change through it)."""
    session = emulator.api_session()
    base = f"{emulator.url}/api/v1/limeobject"
    try:
        with emulator.lock:
            persons = sorted(emulator.store.objects["person"])
            companies = sorted(emulator.store.objects["company"])
        roll = rng.random()
        if roll < 0.6 and persons:
            pid = rng.choice(persons)
            value = rng.choice(FIRST)
            session.put(f"{base}/person/{pid}/", json={"firstname": value},
                        timeout=10).raise_for_status()
            return f"person {pid}: firstname = {value!r}"
        if roll < 0.8 and companies:
            cid = rng.choice(companies)
            name = f"{rng.choice(LAST)} Group"
            session.put(f"{base}/company/{cid}/", json={"name": name},
                        timeout=10).raise_for_status()
            return f"company {cid}: name = {name!r}"
        first, last = rng.choice(FIRST), rng.choice(LAST)
        made = session.post(f"{base}/person/", json={
            "firstname": first, "lastname": last, "customertype": "A",
            "email": f"new.{rng.randrange(10**6)}@lime.example",
            "company": rng.choice(companies) if companies else None}, timeout=10)
        made.raise_for_status()
        return f"new person {made.json()['_id']}: {first} {last}"
    finally:
        session.close()
