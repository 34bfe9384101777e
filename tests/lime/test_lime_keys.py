"""Lime persons' keys in APSIS (``key_prefix``, :mod:`syncd_lime.keys`): Lime ids are unique
only per instance, so a person's key names its instance.

Against the emulators, a real in-process daemon and one SQLite file: two Lime instances
with the same ids into one APSIS account end with two distinct profiles for the same id,
and an opt-out made in APSIS goes back to the right instance only; a store written with
plain ids (as before the option) keeps its profiles under their plain keys after the
upgrade (the APSIS emulator's profile count does not move), new persons get the prefix;
the config check refuses two instances whose keys could collide in one destination."""

from __future__ import annotations

import pytest
from syncd_apsis.emulator import ApsisEmulator
from syncd_lime.connector import LimeConnector
from syncd_lime.emulator import LimeEmulator
from syncd_lime.keys import Keys, derived_prefix

from syncd.config.loader import check
from syncd.connectors import plugins
from syncd.connectors.ledger import Ledger
from syncd.testing import wait_for
from tests.lime.lime_daemon import full_sync, lime_config, running, settle, write_config

TOPIC = "com.apsis1.topics.newsletter"
FIRSTNAME = "com.apsis1.attributes.firstname"


@pytest.fixture
def emulators():
    made: list = []

    def make(kind, **kwargs):
        emu = kind(**kwargs)
        made.append(emu)
        return emu

    try:
        yield make
    finally:
        for emu in made:
            emu.stop()


def lime(make, seed: int = 2) -> LimeEmulator:
    emu = make(LimeEmulator, seed=seed, delivery_backoff=0.02)
    emu.seed(30, seed=seed)
    emu.start()
    return emu


def matched(emu: LimeEmulator) -> list[int]:
    """The persons the sandbox rules sync (customertype A), by id."""
    return sorted(p for p, o in emu.store.objects["person"].items()
                  if o["customertype"] == "A")


def newest_newsletter(emu: LimeEmulator, pid: int) -> dict:
    """The person's newest Newsletter consent ({} if none)."""
    types = {t["title"]: t["_id"] for t in emu.store.objects["consenttype"].values()}
    return max((c for c in emu.consents_of(pid) if c["consenttype"] == types["Newsletter"]),
               key=lambda c: c["date"], default={})


def opt_out_round(daemon, *integrations: str) -> None:
    for name in integrations:
        daemon.supervisor.coordinator(name).run_job("consent_changes", {}).get(timeout=60)


def test_two_instances_with_the_same_ids_stay_two_profiles_and_opt_outs_go_home(
        tmp_path, emulators):
    east, west = lime(emulators), lime(emulators)  # one seed: the same ids
    apsis = emulators(ApsisEmulator, seed=3)
    apsis.start()
    shared = matched(east)
    assert shared == matched(west) and shared
    both = next(p for p in shared if newest_newsletter(east, p).get("approved")
                and newest_newsletter(west, p).get("approved"))
    for pid, person in west.store.objects["person"].items():  # other people: other e-mails
        if person["email"]:
            west.api_session().put(
                f"{west.url}/api/v1/limeobject/person/{pid}/",
                json={"email": person["email"].replace("@", ".west@")},
                timeout=10).raise_for_status()
    for emu, name in ((east, "East"), (west, "West")):
        emu.api_session().put(f"{emu.url}/api/v1/limeobject/person/{both}/",
                              json={"firstname": name}, timeout=10).raise_for_status()
    path = write_config(str(tmp_path / "syncd.toml"), lime_config(
        str(tmp_path / "state"), apsis, {"east": (east, {}), "west": (west, {})}))
    with running(path) as daemon:
        full_sync(daemon, "east-sync")
        full_sync(daemon, "west-sync")
        pe, pw = derived_prefix(east.url), derived_prefix(west.url)
        assert pe != pw
        snapshot = apsis.snapshot()
        # every matched person of each instance is a profile of its own
        assert len(snapshot) == 2 * len(shared)
        assert set(snapshot) == {f"{p}{i}" for p in (pe, pw) for i in shared}
        assert snapshot[f"{pe}{both}"][FIRSTNAME] == "East"
        assert snapshot[f"{pw}{both}"][FIRSTNAME] == "West"
        # an unsubscribe of east's person goes back to east only
        consents_before = (len(east.store.objects["consent"]),
                           len(west.store.objects["consent"]))
        apsis.unsubscribe(f"{pe}{both}", TOPIC)

        def written_back() -> bool:
            opt_out_round(daemon, "east-sync", "west-sync")
            return newest_newsletter(east, both)["approved"] is False

        assert wait_for(written_back, 60, interval=0.2)
        opt_out_round(daemon, "east-sync", "west-sync")  # west has had its chance too
        assert newest_newsletter(west, both)["approved"] is True
        assert (len(east.store.objects["consent"]),
                len(west.store.objects["consent"])) == consents_before
        assert daemon.store.unwritten_optouts("west-sync") == []
        assert not daemon.store.optouts("west-sync", [f"{pe}{both}", f"{pw}{both}"])
        # a real-time change of west's person reaches west's profile only
        west.api_session().put(f"{west.url}/api/v1/limeobject/person/{both}/",
                               json={"firstname": "West2"}, timeout=10).raise_for_status()
        west.wait_deliveries(10)
        assert wait_for(lambda: apsis.snapshot()[f"{pw}{both}"][FIRSTNAME] == "West2", 30)
        assert apsis.snapshot()[f"{pe}{both}"][FIRSTNAME] == "East"


def test_a_store_with_plain_keys_keeps_them_and_duplicates_no_profile(tmp_path, emulators):
    crm = lime(emulators)
    apsis = emulators(ApsisEmulator, seed=3)
    apsis.start()
    state = str(tmp_path / "state")
    path = str(tmp_path / "syncd.toml")
    # before key_prefix existed: plain Lime ids as keys
    write_config(path, lime_config(state, apsis, {"crm": (crm, {"key_prefix": ""})}))
    shared = matched(crm)
    with running(path) as daemon:
        full_sync(daemon, "crm-sync")
        with daemon.store._tx() as conn:  # an old store: no prefix was ever recorded
            conn.execute("DELETE FROM connection_counts WHERE name='key_prefixes'")
    assert set(apsis.snapshot()) == {str(i) for i in shared}
    # the upgrade: key_prefix not set, so derived from base_url
    write_config(path, lime_config(state, apsis, {"crm": (crm, {})}))
    prefix = derived_prefix(crm.url)
    with running(path) as daemon:
        run = full_sync(daemon, "crm-sync")
        assert run["created"] == 0 and run["updated"] == 0  # nothing written again
        assert len(apsis.snapshot()) == len(shared)  # no duplicate profile
        assert set(apsis.snapshot()) == {str(i) for i in shared}
        # a real-time change of a person synced before reaches its plain-keyed profile
        old = shared[0]
        crm.api_session().put(f"{crm.url}/api/v1/limeobject/person/{old}/",
                              json={"firstname": "Changed"}, timeout=10).raise_for_status()
        crm.wait_deliveries(10)
        assert wait_for(lambda: apsis.snapshot()[str(old)][FIRSTNAME] == "Changed", 30)
        # a new person gets the prefix
        made = crm.create("person", {"firstname": "New", "lastname": "Person",
                                     "email": "new.person@lime.example",
                                     "customertype": "A"})
        crm.wait_deliveries(10)
        settle(daemon, "crm-sync")
        assert wait_for(lambda: f"{prefix}{made['_id']}" in apsis.snapshot(), 30)
        assert len(apsis.snapshot()) == len(shared) + 1
        # an opt-out of a plain-keyed profile is written back to its person
        opted = next(p for p in shared if newest_newsletter(crm, p).get("approved"))
        apsis.unsubscribe(str(opted), TOPIC)

        def written_back() -> bool:
            opt_out_round(daemon, "crm-sync")
            return newest_newsletter(crm, opted)["approved"] is False

        assert wait_for(written_back, 60, interval=0.2)
        run = full_sync(daemon, "crm-sync")
        assert run["created"] == 0
        assert len(apsis.snapshot()) == len(shared) + 1


def test_keys_keep_the_key_a_link_was_written_with():
    class Linked(Ledger):
        def __init__(self, linked: set[str]):
            super().__init__()
            self.held = linked

        def linked(self, source_ids):
            return self.held & set(source_ids)

    ledger = Linked({"42", "old:43"})
    ledger.count("key_prefixes", "old:")
    keys = Keys("new:", ledger)
    assert keys.keys([42, 43, 44]) == {42: "42", 43: "old:43", 44: "new:44"}
    assert [keys.person_id(k) for k in ("42", "old:43", "new:44", "other:1", "new:x")] == \
        [42, 43, 44, None, None]
    plain = Keys("", Linked({"old:43"}))
    assert plain.keys([42, 43]) == {42: "42", 43: "43"}  # "old:" was never recorded
    assert derived_prefix("https://Acme.lime-crm.com/acme-app/") == "acme.lime-crm.com-acme-app:"
    assert derived_prefix("http://127.0.0.1:8080") == "127.0.0.1-8080:"


@pytest.fixture
def apsis(emulators):
    emu = emulators(ApsisEmulator, seed=1)
    emu.start()
    return emu


def config_of(tmp_path, apsis, limes: dict[str, dict],
              destinations: dict[str, str] | None = None) -> str:
    config = lime_config(str(tmp_path / "state"), apsis, {})
    for name, options in limes.items():
        config["connections"][name] = {
            "kind": "lime", "api_key": "k", "webhook_secret": "s", **options}
        destination = (destinations or {}).get(name, "marketing")
        config["integrations"][f"{name}-sync"] = {
            "source": name, "destination": destination, **LimeConnector.sandbox_rules()}
        if destination not in config["connections"]:
            config["connections"][destination] = dict(config["connections"]["marketing"])
    return write_config(str(tmp_path / "syncd.toml"), config)


A, B = "https://a.lime-crm.com/app", "https://b.lime-crm.com/app"


@pytest.mark.parametrize("a,b", [({"key_prefix": ""}, {"key_prefix": ""}),
                                 ({"key_prefix": "lime"}, {"key_prefix": "lime1"}),
                                 ({"key_prefix": "x:"}, {"key_prefix": "x:"})])
def test_two_instances_whose_keys_could_collide_are_refused(tmp_path, apsis, a, b):
    problems = check(config_of(tmp_path, apsis, {"east": {"base_url": A, **a},
                                          "west": {"base_url": B, **b}}), plugins.load())
    [problem] = problems
    assert "connections.west.key_prefix" in problem
    assert "east" in problem and "west" in problem and "marketing" in problem
    assert "key_prefix" in problem and "no profile is duplicated" in problem


@pytest.mark.parametrize("a,b,destinations", [
    ({}, {}, None),  # derived from each instance's URL
    ({"key_prefix": ""}, {"key_prefix": "b:"}, None),  # no Lime id starts with "b:"
    ({"key_prefix": ""}, {"key_prefix": ""}, {"west": "other"}),  # two destinations
])
def test_keys_that_cannot_collide_pass(tmp_path, apsis, a, b, destinations):
    path = config_of(tmp_path, apsis, {"east": {"base_url": A, **a}, "west": {"base_url": B, **b}},
                     destinations)
    assert check(path, plugins.load()) == []


def test_two_connections_to_one_instance_may_share_keys(tmp_path, apsis):
    path = config_of(tmp_path, apsis, {"east": {"base_url": A, "key_prefix": ""},
                                "west": {"base_url": A + "/", "key_prefix": ""}})
    assert check(path, plugins.load()) == []


@pytest.mark.parametrize("event,values", [("person.update", {}),
                                          ("consent.new", {"person": 42, "consenttype": 7})])
def test_an_event_names_every_key_its_person_may_have(event, values):
    """A write-back waits for a pending change of its record (syncd.engine.newest): the
    change must be found under the key the person was written with, plain or prefixed."""
    import json

    from syncd_lime.webhooks import sign

    from syncd.engine.newest import concerns
    from syncd.plugin import Secret

    parse = LimeConnector.webhook_parser("crm", {
        "webhook_secret": Secret("s"), "base_url": "https://a.lime-crm.com/app"})
    body = json.dumps({"event": event, "body": {"id": 42 if event.startswith("person")
                                                 else 9, "values": values}}).encode()
    [parsed] = parse({"X-Lime-Signature": sign("s", body)}, body)
    assert concerns(parsed, "a.lime-crm.com-app:42") and concerns(parsed, "42")
    assert not concerns(parsed, "43") and not concerns(parsed, "b:42")
