"""The APSIS One connector against its emulator: auth, create/update paths, budgets, errors."""

import pytest
from apsis_support import requests_to
from syncd_apsis.audience import EMAIL
from syncd_apsis.connector import ApsisConnector

from syncd.config.loader import Problems
from syncd.config.sections import validate_options
from syncd.connectors import plugins
from syncd.exceptions import RemoteError
from syncd.records import Consent, Profile

FIRST = "com.apsis1.attributes.firstname"
MAIL = "com.apsis1.attributes.email"
NEWSLETTER = "com.apsis1.topics.newsletter"


def person(key="crm-1", email="jan@example.nl", **attributes):
    return Profile(key=key, email=email, attributes=attributes)


# -- registration and config -------------------------------------------------------------------


def test_registered_through_the_entry_point():
    registry = plugins.load()
    assert registry.connector("apsis") is ApsisConnector
    status = next(p for p in registry.plugins if p.name == "apsis")
    assert status.status == "loaded", status.reason


def test_canonical_attribute_names():
    assert ApsisConnector.canonical_attribute("firstname") == FIRST
    assert ApsisConnector.canonical_attribute("usercreated.attributes.x") == \
        "usercreated.attributes.x"


def test_sandbox_config_is_a_valid_section(emu):
    config = ApsisConnector.sandbox_config(emu)
    problems = Problems(None)
    values = validate_options(config, ApsisConnector.options, "connections.apsis", problems,
                              base_dir="/", environ={}, extra_keys=["kind"])
    assert not problems.errors, [str(e) for e in problems.errors]
    assert values["keyspace"] == "com.apsis1.keyspaces.crm-id"
    assert all(o.doc for o in ApsisConnector.options)


def test_check_confirms_the_section(emu, connect):
    facts = connect(emu).check()
    assert facts["section"] == emu.section and facts["token_fetches"] == 1
    with pytest.raises(RemoteError, match="fix: set `section`"):
        connect(emu, section="com.apsis1.sections.nope").check()


# -- auth --------------------------------------------------------------------------------------


def test_token_is_fetched_once_for_many_writes(emu, connect):
    conn = connect(emu)
    for batch in range(3):
        profiles = [person(f"k{batch}-{i}", f"p{batch}-{i}@x.nl") for i in range(10)]
        assert {r.outcome for r in conn.write_profiles(profiles, set())} == {"created"}
    assert emu.tokens.issued == 1
    assert conn.stats()["token_fetches"] == 1


def test_expired_token_is_replaced(emu, connect):
    conn = connect(emu)
    assert conn.write_profiles([person()], set())[0].outcome == "created"
    emu.tokens.expire_all()
    assert conn.write_profiles([person(firstname="Jan")], {"crm-1"})[0].outcome == "updated"
    assert emu.tokens.issued == 2
    assert emu.stats()["by_status"]["401"] == 1


def test_403_drops_the_token_and_reauthenticates(emu, connect):
    conn = connect(emu)
    conn.check()
    emu.set_faults(fail_next=[403])
    assert conn.write_profiles([person()], set())[0].outcome == "created"
    assert emu.tokens.issued == 2


def test_bad_secret_fails_without_showing_it(emu, connect):
    conn = connect(emu, client_secret="wrong-secret-value")
    [result] = conn.write_profiles([person()], set())
    assert result.outcome == "failed" and "401" in result.reason
    for text in (result.reason, repr(conn), repr(conn.client), repr(conn.config),
                 str(conn.stats())):
        assert "wrong-secret-value" not in text
    assert emu.snapshot() == {}


# -- create and update -------------------------------------------------------------------------


def test_create_with_v1_then_update_with_v2_merge_patch(emu, connect):
    conn = connect(emu)
    [r] = conn.write_profiles([person(firstname="Jan", lastname="de Vries")], set())
    assert r.outcome == "created"
    assert requests_to(emu, "PATCH", "/attributes")[-1] == (
        f"/audience/keyspaces/com.apsis1.keyspaces.crm-id/profiles/crm-1/sections/"
        f"{emu.section}/attributes", 201)
    assert emu.snapshot()["crm-1"] == {MAIL: "jan@example.nl", FIRST: "Jan",
                                       "com.apsis1.attributes.lastname": "de Vries",
                                       "com.apsis1.attributes.crmid": "crm-1"}
    [r] = conn.write_profiles([person(firstname=None, lastname="Smit")], {"crm-1"})
    assert r.outcome == "updated"
    path, status = requests_to(emu, "PATCH", "/attributes")[-1]
    assert path.startswith("/v2/") and status == 204
    assert emu.snapshot()["crm-1"] == {MAIL: "jan@example.nl", "com.apsis1.attributes.lastname":
                                       "Smit", "com.apsis1.attributes.crmid": "crm-1"}


def test_creating_an_existing_profile_clears_what_is_none(emu, connect):
    conn = connect(emu)
    conn.write_profiles([person(firstname="Jan")], set())
    [r] = connect(emu).write_profiles([person(firstname="")], set())  # syncd forgot it
    assert r.outcome == "created"
    assert FIRST not in emu.snapshot()["crm-1"]


def test_changed_email_keeps_one_profile(emu, connect):
    conn = connect(emu)
    conn.write_profiles([person(email="old@x.nl", firstname="Jan")], set())
    [r] = conn.write_profiles([person(email="new@x.nl", firstname="Jan")], {"crm-1"})
    assert r.outcome == "updated"
    snapshot = emu.snapshot()
    assert list(snapshot) == ["crm-1"] and snapshot["crm-1"][MAIL] == "new@x.nl"
    assert emu.keys_of("crm-1")[EMAIL] == "new@x.nl"
    assert emu.profile("old@x.nl", EMAIL) is None
    assert emu.profile("new@x.nl", EMAIL)[FIRST] == "Jan"


def test_email_of_another_crm_id_is_a_conflict_with_its_problem_detail(emu, connect):
    conn = connect(emu)
    conn.write_profiles([person("crm-1", "a@x.nl"), person("crm-2", "b@x.nl")], set())
    [r] = conn.write_profiles([person("crm-2", "a@x.nl")], {"crm-2"})
    assert r.outcome == "failed" and not r.retryable
    assert "409" in r.reason and "Conflict" in r.reason and "belongs to another profile" in r.reason
    assert emu.snapshot()["crm-2"][MAIL] == "b@x.nl"


def test_known_profile_deleted_in_apsis_is_recreated(emu, connect):
    conn = connect(emu)
    conn.write_profiles([person(firstname="Jan")], set())
    assert emu.remove("crm-1")
    [r] = conn.write_profiles([person(firstname="Jan")], {"crm-1"})
    assert r.outcome == "created"
    assert emu.snapshot()["crm-1"][FIRST] == "Jan"
    assert [s for _, s in requests_to(emu, "PATCH", "/v2/")] == [404]


def test_email_keyspace_encodes_the_key_and_deletes_by_crm_id(emu, connect):
    conn = connect(emu, keyspace=EMAIL)
    [r] = conn.write_profiles([person(email="a+b/c@x.nl")], set())
    assert r.outcome == "created" and r.remote_id == "a+b/c@x.nl", r.reason
    assert emu.profile("a+b/c@x.nl", EMAIL)["com.apsis1.attributes.crmid"] == "crm-1"
    assert conn.delete_profiles(["crm-1"])[0].outcome == "deleted"
    assert emu.snapshot() == {}


# -- failures ----------------------------------------------------------------------------------


def test_unknown_attribute_fails_with_the_fix(emu, connect):
    conn = connect(emu)
    good, bad = person("crm-1"), person("crm-2", "b@x.nl", shoesize=44)
    results = conn.write_profiles([good, bad], set())
    assert [r.outcome for r in results] == ["created", "failed"]
    assert "com.apsis1.attributes.shoesize" in results[1].reason
    assert "fix:" in results[1].reason and not results[1].retryable
    assert "crm-2" not in emu.snapshot()


def test_definitions_are_loaded_once_and_reloaded_once_for_a_new_name(emu, connect):
    conn = connect(emu)
    conn.write_profiles([person(firstname="Jan")], set())
    emu.define_attribute("shoesize")  # an admin adds it while syncd runs
    [r] = conn.write_profiles([person("crm-2", "b@x.nl", shoesize=44)], set())
    assert r.outcome == "created"
    assert emu.snapshot()["crm-2"]["com.apsis1.attributes.shoesize"] == 44
    for _ in range(3):
        assert conn.write_profiles([person(hatsize=1)], {"crm-1"})[0].outcome == "failed"
    assert len(requests_to(emu, "GET", "/attributes")) == 3


def test_body_over_100_kb_is_413_and_not_retried(emu, connect):
    conn = connect(emu)
    [r] = conn.write_profiles([person(firstname="x" * 120_000)], set())
    assert r.outcome == "failed" and not r.retryable
    assert "413" in r.reason and "body over" in r.reason
    assert emu.stats()["by_status"]["413"] == 1


def test_problem_detail_reaches_the_reason(emu, connect):
    profile = Profile("crm-1", "a@x.nl", consents=(Consent("com.apsis1.topics.nope", "email",
                                                           True),))
    [r] = connect(emu).write_profiles([profile], set())
    assert r.outcome == "failed" and not r.retryable
    assert "topic 'com.apsis1.topics.nope' not found" in r.reason


def test_server_errors_exhausted_are_retryable(emu, connect):
    conn = connect(emu, max_attempts=2)
    conn.check()
    emu.set_faults(fail_next=[503, 503])
    [r] = conn.write_profiles([person()], set())
    assert r.outcome == "failed" and r.retryable


# -- rate limits -------------------------------------------------------------------------------


def test_429_with_retry_after_is_honoured(emu, connect):
    conn = connect(emu)
    conn.check()
    emu.set_faults(fail_next=[429, 429, 429], retry_after=0.3)
    profiles = [person(f"k{i}", f"p{i}@x.nl") for i in range(12)]
    results = conn.write_profiles(profiles, set())
    assert [r.key for r in results] == [p.key for p in profiles]
    assert {r.outcome for r in results} == {"created"}
    stats = emu.stats()
    assert stats["by_status"]["429"] == 3
    assert stats["retry_after_violations"] == 0


def test_per_key_limit_of_the_server_is_honoured(make_emulator, connect):
    emu = make_emulator(per_key_per_second=5)
    conn = connect(emu, per_profile_per_second=100)  # misconfigured: the server pushes back
    results = conn.write_profiles([person(firstname=f"v{i}") for i in range(14)], set())
    assert {r.outcome for r in results} == {"created"}, [r.reason for r in results]
    stats = emu.stats()
    assert stats["by_status"].get("429", 0) > 0
    assert stats["retry_after_violations"] == 0


def test_per_key_budget_keeps_writes_to_one_key_under_the_limit(make_emulator, connect):
    emu = make_emulator(per_key_per_second=20)
    conn = connect(emu, per_profile_per_second=20)
    results = conn.write_profiles([person(firstname=f"v{i}") for i in range(30)], set())
    assert {r.outcome for r in results} == {"created"}
    assert "429" not in emu.stats()["by_status"]


def test_429_without_retry_after_backs_off(make_emulator, connect):
    emu = make_emulator(send_retry_after=False)
    conn = connect(emu)
    conn.check()
    emu.set_faults(fail_next=[429])
    assert conn.write_profiles([person()], set())[0].outcome == "created"


# -- consents, tags, delete --------------------------------------------------------------------


def test_consents_and_tags(emu, connect):
    conn = connect(emu)
    opt_in = Profile("crm-1", "a@x.nl", consents=(Consent(NEWSLETTER, "email", True),
                                                  Consent(NEWSLETTER, "sms", True)),
                     tags={"com.apsis1.tags.vip": True})
    assert conn.write_profiles([opt_in], set())[0].outcome == "created"
    assert conn.write_profiles([opt_in], {"crm-1"})[0].outcome == "updated"  # 409 = unchanged
    assert emu.stats()["by_status"]["409"] == 2
    assert emu.consents("crm-1") == {(NEWSLETTER, "com.apsis1.channels.email"): "opt-in",
                                     (NEWSLETTER, "com.apsis1.channels.sms"): "opt-in"}
    opt_out = Profile("crm-1", "a@x.nl", consents=(Consent(NEWSLETTER, "email", False),),
                      tags={"com.apsis1.tags.vip": False})
    assert conn.write_profiles([opt_out], {"crm-1"})[0].outcome == "updated"
    assert emu.consents("crm-1")[(NEWSLETTER, "com.apsis1.channels.email")] == "opt-out"
    assert emu.tags("crm-1") == {"com.apsis1.tags.vip": False}


def test_delete(emu, connect):
    conn = connect(emu)
    conn.write_profiles([person("crm-1", "a@x.nl"), person("crm-2", "b@x.nl")], set())
    results = conn.delete_profiles(["crm-1", "never-there"])
    assert [(r.key, r.outcome) for r in results] == [("crm-1", "deleted"),
                                                     ("never-there", "deleted")]
    assert list(emu.snapshot()) == ["crm-2"]
    assert emu.profile("a@x.nl", EMAIL) is None
    assert conn.stats()["deleted"] == 2


def test_every_merge_patch_is_sent_as_merge_patch_json(emu, connect, monkeypatch):
    import requests as rq

    sent = []
    original = rq.Session.request

    def spy(self, method, url, **kwargs):
        sent.append((method, url, dict(kwargs.get("headers") or {})))
        return original(self, method, url, **kwargs)

    monkeypatch.setattr(rq.Session, "request", spy)
    conn = connect(emu)
    profile = person(firstname="Jan")
    profile.tags["com.apsis1.tags.vip"] = True
    [r] = conn.write_profiles([profile], set())
    assert r.outcome == "created", r.reason
    [r] = conn.write_profiles([person(firstname="Piet")], {"crm-1"})
    assert r.outcome == "updated", r.reason
    patches = [(url, h) for m, url, h in sent if m == "PATCH"]
    assert {url.rsplit("/", 1)[-1] for url, _ in patches} == {"attributes", "tags"}
    assert any("/v2/" in url for url, _ in patches) and any("/v2/" not in url
                                                            for url, _ in patches)
    assert all(h["Content-Type"] == "application/merge-patch+json" for _, h in patches)
    v2 = [h for url, h in patches if "/v2/" in url]
    assert all(h["Accept"] == "application/problem+json" for h in v2)


def test_a_token_with_a_line_break_fails_writes_without_leaking_it(emu, connect, monkeypatch):
    issue = emu.tokens.issue

    def broken(subject="syncd"):
        token, lifetime = issue(subject)
        return token + "\nsecret-tail", lifetime

    monkeypatch.setattr(emu.tokens, "issue", broken)
    conn = connect(emu)
    [r] = conn.write_profiles([person(firstname="Jan")], set())
    assert r.outcome == "failed" and not r.retryable
    assert r.reason.endswith(": InvalidHeader") and "/audience/sections/" in r.reason
    for text in (r.reason, repr(r), str(conn.stats())):
        assert "secret-tail" not in text and "Bearer" not in text
