"""When a Lime consent was given (``Record.label_times``), which the core compares with an
unsubscribe in APSIS before writing it back: the consent's date by default, the property
``consent_time_property`` names (``_timestamp``), or none. Whether the consent add-on sets
the date again on a re-approval is a GAP (apis.md 2.4), hence the option."""

from __future__ import annotations

import datetime as dt

import pytest

from syncd.plugin import Need, NeedKind, SchemaNeeds

DATE = "2029-01-02T03:04:05Z"  # after every seeded consent: the newest


def given_consent(emulator) -> tuple[int, dict]:
    kind = next(t["_id"] for t in emulator.store.objects["consenttype"].values()
                if t["title"] == "Newsletter")
    pid = min(emulator.store.objects["person"])
    consent = emulator.create("consent", {"person": pid, "consenttype": kind, "approved": True,
                                          "date": DATE})
    return pid, consent


def utc(text: str) -> dt.datetime:
    when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


@pytest.mark.parametrize("setting", ["", "date", "_timestamp", "none"])
def test_the_time_of_a_given_consent(emulator, make_connector, setting):
    pid, consent = given_consent(emulator)
    connector = make_connector(consent_time_property=setting)
    connector.set_needs(SchemaNeeds("source", (Need(NeedKind.LABEL, "Newsletter",
                                                    "integrations.x.Newsletter"),)))
    record = connector.read_record(str(pid))
    assert "Newsletter" in record.labels
    if setting == "none":
        assert record.label_times == {}
        return
    wanted = consent["_timestamp"] if setting == "_timestamp" else DATE
    assert utc(record.label_times["Newsletter"]) == utc(wanted)
    assert (setting == "_timestamp") == (utc(wanted) != utc(DATE))  # the two differ
