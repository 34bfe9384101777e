"""Consent both ways: the pure rules, and the coordinator with real actors and SQLite."""


import pykka
import pytest

from syncd.config.model import ConsentMapping, IntegrationConfig
from syncd.connectors.connection import ConnectionActor
from syncd.engine import rules as R
from syncd.engine.coordinator import Coordinator, Progress
from syncd.engine.store import Store
from syncd.records import Consent, Link, Record
from syncd.testing import MemoryConnector, wait_for

NEWS = ConsentMapping("Newsletter", "news", "email")
RULES = R.Rules(consents=(NEWS,), selections={"VIP": "vip"})


def rec(labels=(), times=None, selections=()):
    return Record("p1", email="a@x.nl", labels=frozenset(labels), label_times=times or {},
                  selections=frozenset(selections))


# -- pure ---------------------------------------------------------------------------------------


def test_a_label_gives_an_opt_in_and_no_label_an_opt_out():
    consents, _ = R.resolve_consents(RULES, rec({"Newsletter"}), None)
    assert consents == (Consent("news", "email", True),)
    consents, _ = R.resolve_consents(RULES, rec(), None)
    assert consents == (Consent("news", "email", False),)


def test_an_opt_out_in_the_destination_holds_against_an_older_label():
    optouts = {("news", "email"): "2026-05-01T10:00:00+00:00"}
    old_label = rec({"Newsletter"}, {"Newsletter": "2026-01-01T00:00:00+00:00"})
    consents, overridden = R.resolve_consents(RULES, old_label, optouts)
    assert consents[0].opted_in is False and overridden == ()
    unknown_time = rec({"Newsletter"})
    assert R.resolve_consents(RULES, unknown_time, optouts)[0][0].opted_in is False


def test_a_newer_opt_in_in_the_source_overrides_the_opt_out():
    optouts = {("news", "email"): "2026-05-01T10:00:00+00:00"}
    newer = rec({"Newsletter"}, {"Newsletter": "2026-05-02T08:00:00Z"})
    consents, overridden = R.resolve_consents(RULES, newer, optouts)
    assert consents[0].opted_in is True and overridden == (("news", "email"),)


def test_a_new_profile_gets_its_opt_ins_and_set_tags_only():
    d = R.decide(RULES, rec(selections={"VIP"}), None)
    assert d.profile.consents == () and d.profile.tags == {"vip": True}
    d = R.decide(RULES, rec({"Newsletter"}), None)
    assert d.profile.consents == (Consent("news", "email", True),) and d.profile.tags == {}
    assert d.consent_flips == 0


def test_only_changed_consents_and_tags_are_sent_to_a_known_profile():
    first = R.decide(RULES, rec({"Newsletter"}, selections={"VIP"}), None)
    link = Link("p1", first.digest, first.state)
    removed = R.decide(RULES, rec(), link)
    assert removed.profile.consents == (Consent("news", "email", False),)
    assert removed.profile.tags == {"vip": False}
    assert removed.consent_flips == 1


# -- coordinator --------------------------------------------------------------------------------



@pytest.fixture
def setup(tmp_path, memory_world, actors):
    world_name, world = memory_world
    store = Store(str(tmp_path / "syncd.db"))
    refs = {n: ConnectionActor.start(MemoryConnector(n, {"world": world_name}))
            for n in ("src", "dst")}
    caps = {"source": MemoryConnector.capabilities, "destination": MemoryConnector.capabilities}
    progress = Progress()
    integration = IntegrationConfig("i", "src", "dst", consents=(NEWS,), page_size=10,
                                    confirm_share=0.2)
    coord = Coordinator.start(integration, R.Rules.from_integration(integration), store,
                              lambda n: refs[n].proxy(), progress=progress,
                              capabilities=caps).proxy()
    for i in range(50):
        world.put(Record(f"p{i:02d}", email=f"p{i}@x.nl"))
        world.set_label(f"p{i:02d}", "Newsletter", True, at="2026-01-01T00:00:00+00:00")
    yield world, store, coord, progress
    pykka.ActorRegistry.stop_all(block=True, timeout=10)  # no actor uses a closed store
    store.close()


def full_sync(store, coord, confirm=False):
    run_id = coord.start_full_sync(confirm=confirm).get(timeout=5)
    assert wait_for(lambda: store.run(run_id)["status"] != "running")
    return store.run(run_id)


def test_an_opt_out_in_the_destination_is_written_back_and_survives_a_full_sync(setup):
    world, store, coord, _ = setup
    assert full_sync(store, coord)["created"] == 50
    assert world.consents["p07"][("news", "email")] is True
    world.unsubscribe("p07", "news", "email", at="2026-06-01T00:00:00+00:00")
    coord.run_job("consent_changes", {}).get(timeout=5)
    assert "Newsletter" not in world.records["p07"].labels  # written back to the CRM
    # even if the CRM still showed the old label, a full sync must not opt back in
    world.set_label("p07", "Newsletter", True, at="2026-01-01T00:00:00+00:00")
    full_sync(store, coord)
    assert world.consents["p07"][("news", "email")] is False


def test_a_newer_opt_in_in_the_crm_opts_in_again(setup):
    world, store, coord, _ = setup
    full_sync(store, coord)
    world.unsubscribe("p08", "news", "email", at="2026-06-01T00:00:00+00:00")
    coord.run_job("consent_changes", {}).get(timeout=5)
    world.set_label("p08", "Newsletter", True, at="2026-07-01T00:00:00+00:00")
    full_sync(store, coord)
    assert world.consents["p08"][("news", "email")] is True
    assert store.optouts("i", ["p08"]) == {}


def test_a_run_that_flips_too_many_consents_stops_for_confirmation(setup):
    world, store, coord, _ = setup
    full_sync(store, coord)
    for i in range(30):  # 60 % of the profiles lose their opt-in label
        world.set_label(f"p{i:02d}", "Newsletter", False)
    run = full_sync(store, coord)
    assert run["status"] == "needs_confirmation"
    assert "--confirm" in run["error"]
    assert sum(1 for k, c in world.consents.items() if not c[("news", "email")]) == 10
    run = full_sync(store, coord, confirm=True)
    assert run["status"] == "completed"
    assert sum(1 for c in world.consents.values() if not c[("news", "email")]) == 30


@pytest.mark.parametrize(("share", "total", "allowed"), [
    (0.2, 50, 10), (0.1, 200, 20), (0.3, 100, 30), (0.25, 80, 20), (0.5, 40, 20),
    (0.05, 100, 10),  # the minimum: never fewer than 10
    (0.0, 30, 10),
])
def test_stop_and_confirm_lets_exactly_the_share_through(tmp_path, memory_world, actors,
                                                          share, total, allowed):
    """Every profile loses its opt-in label: exactly ``max(10, share × profiles)`` opt-outs
    are written, the rest wait for a confirm (a limit fixed at another share fails here)."""
    world_name, world = memory_world
    store = Store(str(tmp_path / "syncd.db"))
    refs = {n: ConnectionActor.start(MemoryConnector(n, {"world": world_name}))
            for n in ("src", "dst")}
    caps = {"source": MemoryConnector.capabilities, "destination": MemoryConnector.capabilities}
    integration = IntegrationConfig("i", "src", "dst", consents=(NEWS,), page_size=25,
                                    confirm_share=share)
    coord = Coordinator.start(integration, R.Rules.from_integration(integration), store,
                              lambda n: refs[n].proxy(), capabilities=caps).proxy()
    for i in range(total):
        world.put(Record(f"p{i:03d}", email=f"p{i}@x.nl"))
        world.set_label(f"p{i:03d}", "Newsletter", True, at="2026-01-01T00:00:00+00:00")
    assert full_sync(store, coord)["created"] == total
    for i in range(total):
        world.set_label(f"p{i:03d}", "Newsletter", False)
    run = full_sync(store, coord)
    opted_out = sum(1 for c in world.consents.values() if not c[("news", "email")])
    assert opted_out == allowed
    assert run["status"] == "needs_confirmation" and run["error"].startswith(
        f"{total - allowed} consent changes")
    assert full_sync(store, coord, confirm=True)["status"] == "completed"
    assert sum(1 for c in world.consents.values() if not c[("news", "email")]) == total
    pykka.ActorRegistry.stop_all(block=True, timeout=10)
    store.close()


def test_an_opt_in_over_an_opt_out_the_destination_reported_counts_as_a_flip():
    first = R.decide(RULES, rec({"Newsletter"}), None)
    unknown = {"c": {"news|email": None}, "t": {}}  # an opt-out was read from the destination
    again = R.decide(RULES, rec({"Newsletter"}), Link("p1", None, unknown))
    assert again.profile.consents == (Consent("news", "email", True),)
    assert again.flipped == ("news|email",)
    agree = R.decide(RULES, rec(), Link("p1", None, unknown))
    assert agree.profile.consents == (Consent("news", "email", False),) and not agree.flipped
    assert first.consent_flips == 0
