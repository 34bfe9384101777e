"""The APSIS connector marks the HTTP calls it makes for profiles (syncd explain): the
attribute PATCH, each consent, the tags and the delete, each for its own profile even when
written concurrently by the connector's own pool; never the token or the definitions.
Through a real connection actor."""

from __future__ import annotations

import pytest
from syncd_apsis.connector import ApsisConnector

from syncd.connectors import calls
from syncd.connectors.connection import ConnectionActor, typed_proxy
from syncd.records import Consent, Profile

NEWSLETTER = "com.apsis1.topics.newsletter"


@pytest.fixture
def proxy(emu):
    config = {**ApsisConnector.sandbox_config(emu), "concurrency": 4}
    config.pop("kind")
    ref = ConnectionActor.start(ApsisConnector("apsis", config))
    yield typed_proxy(ref)
    ref.stop()


def test_writes_and_deletes_keep_their_calls_per_profile(emu, proxy):
    profiles = [Profile(f"crm-{n}", f"p{n}@x.nl", attributes={"firstname": f"n{n}"},
                        consents=(Consent(NEWSLETTER, "email", True),),
                        tags={"com.apsis1.tags.vip": True}) for n in range(6)]
    results = proxy.write_profiles(profiles, []).get(timeout=30)
    assert {r.outcome for r in results} == {"created"}
    for n in range(6):
        made = calls.take(proxy, [f"crm-{n}"])
        assert [(e.method, e.status) for e, _ in made] == [
            ("PATCH", 201), ("POST", 201), ("PATCH", 204)], made
        assert all(m == (f"crm-{n}",) for _, m in made)
        assert all(f"/profiles/crm-{n}/" in e.path for e, _ in made)
        assert made[1][0].path.endswith("/consents") and made[2][0].path.endswith("/tags")
    assert calls.take(proxy, ["crm-0"]) == []  # token and definitions: no profile's

    assert proxy.delete_profiles(["crm-1"]).get(timeout=30)[0].outcome == "deleted"
    [(delete, marked)] = calls.take(proxy, ["crm-1"])
    assert (delete.method, delete.status, marked) == ("DELETE", 204, ("crm-1",))
    assert delete.path.endswith("/profiles/crm-1")
