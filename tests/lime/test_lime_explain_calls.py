"""The Lime connector marks the HTTP calls it makes for records (syncd explain): a read-back
per person (and its consents) and the consents written back. Through a real connection actor."""

from __future__ import annotations

import pytest
from syncd_lime.connector import LimeConnector

from syncd.connectors import calls
from syncd.connectors.connection import ConnectionActor, typed_proxy
from syncd.records import Event
from tests.lime.conftest import lime_config


@pytest.fixture
def proxy(emulator):
    ref = ConnectionActor.start(LimeConnector("crm", lime_config(emulator)))
    yield typed_proxy(ref)
    ref.stop()


def test_read_backs_and_consents_written_back_are_kept_per_record(emulator, proxy):
    pid, consent = next((c["person"], c) for c in emulator.store.objects["consent"].values()
                        if c["approved"] and len(emulator.consents_of(c["person"])) == 1)
    other = next(p for p in emulator.store.objects["person"] if p != pid)
    records = proxy.read_records([Event(str(pid)), Event(str(other))]).get(timeout=30)
    assert {r.id for r in records} == {str(pid), str(other)}
    made = calls.take(proxy, [str(pid)])
    assert made and all(e.method == "GET" and e.status == 200 for e, _ in made)
    assert any(e.path.startswith(f"/api/v1/limeobject/person/{pid}") for e, _ in made), made

    title = emulator.store.objects["consenttype"][consent["consenttype"]]["title"]
    assert proxy.write_consents(str(pid), {title: False}).get(timeout=30).outcome == "updated"
    made = calls.take(proxy, [str(pid)])
    assert [e.method for e, _ in made][-1] in ("PUT", "PATCH", "POST"), made
    assert all(m == (str(pid),) for _, m in made)
