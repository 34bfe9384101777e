"""The connector against every setting of the APSIS emulator's GAP/INFER switches (listed in
:mod:`syncd_apsis.emulator`): channel discriminator strings, the export's topic and decoration
columns. (The 429 scope and Retry-After switches: test_apsis_retry_after.py; consent 2.0 or
1.0: the preflight tests.)"""

import time

import pytest
from syncd_apsis.emulator_events import TOPIC_COLUMN
from syncd_apsis.emulator_profiles import CHANNEL_SETS

from syncd.records import Consent, Profile

NEWSLETTER = "com.apsis1.topics.newsletter"
OFFERS = "com.apsis1.topics.offers"


def subscribed(conn, key):
    profile = Profile(key, f"{key}@example.nl", consents=(
        Consent(NEWSLETTER, "email", True), Consent(OFFERS, "email", True)))
    [r] = conn.write_profiles([profile], set())
    return r


@pytest.mark.parametrize("channels", sorted(CHANNEL_SETS))
def test_consents_go_to_the_channel_the_account_names(make_emulator, connect, channels):
    emu = make_emulator(channels=channels)
    email, sms = CHANNEL_SETS[channels]
    conn = connect(emu, email_channel=email, sms_channel=sms)
    assert subscribed(conn, "crm-1").outcome == "created"
    assert emu.consents("crm-1") == {(NEWSLETTER, email): "opt-in", (OFFERS, email): "opt-in"}
    other = next(c for name, c in CHANNEL_SETS.items() if name != channels)[0]
    wrong = connect(emu, email_channel=other)  # the config names a channel the account lacks
    r = subscribed(wrong, "crm-2")
    assert r.outcome == "failed" and r.status == 400 and not r.retryable
    assert "unknown channel_discriminator" in r.reason


@pytest.mark.parametrize("topic_column", [TOPIC_COLUMN, "topic", ""])
@pytest.mark.parametrize("attribute_columns", ["discriminator", "name"])
def test_unsubscribes_are_read_whatever_the_export_columns(make_emulator, connect, topic_column,
                                                           attribute_columns):
    emu = make_emulator(export_topic_column=topic_column,
                        export_attribute_columns=attribute_columns)
    options = {"export_topic_column": topic_column} if topic_column else {}
    conn = connect(emu, export_poll_interval=0.05, **options)
    assert subscribed(conn, "crm-1").outcome == "created"
    _, cursor = conn.read_consent_changes(None)
    emu.unsubscribe("crm-1", OFFERS, duplicate=False)
    time.sleep(0.003)  # past the last event's millisecond (export windows are half-open)
    changes, _ = conn.read_consent_changes(cursor)
    assert [(c.key, c.topic, c.opted_in) for c in changes] == [("crm-1", OFFERS, False)]
    # a file without the topic column: resolved through the profile's opt-outs (inferred)
    assert [c.inferred for c in changes] == [not topic_column]
    assert conn.stats().get("consent_rows_without_crm_id", 0) == 0
