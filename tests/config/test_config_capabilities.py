"""The loader checks every capability an integration's settings need of its connections and
names the connection, its kind, the capability and the setting when one is missing."""

from __future__ import annotations

import pytest
from config_support import VALID, FakeCrm, FakeMarketing

from syncd.capability import Capability
from syncd.config import ConsentMapping, IntegrationConfig
from syncd.config.needs import Requirement, required


class PlainMarketing(FakeMarketing):
    """A destination that only writes profiles."""

    capabilities = frozenset({Capability.WRITE_PROFILES})


class PlainCrm(FakeCrm):
    """A source that only reads records and parses webhooks."""

    capabilities = frozenset({Capability.READ_RECORDS, Capability.PARSE_WEBHOOKS})


def edit(old: str, new: str, text: str = VALID) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def without_consents_and_selections(text: str = VALID) -> str:
    text = text[:text.index("[integrations.crm-mkt.selections]")]
    return text


def test_delete_unmatched_needs_deletes_of_the_destination(files):
    files.registry.connectors["mkt"] = PlainMarketing
    text = edit('destination = "mkt"', 'destination = "mkt"\ndelete_unmatched = true')
    errors = [e for e in files.errors(text) if e.key == "integrations.crm-mkt.delete_unmatched"]
    error = next(e for e in errors if "delete_profiles" in e.message)
    assert "`mkt` (kind mkt)" in error.message and "destination" in error.message
    assert "remove `delete_unmatched`" in error.fix


def test_delete_unmatched_needs_direct_reads_of_the_source(files):
    files.registry.connectors["crm"] = PlainCrm
    text = edit('destination = "mkt"', 'destination = "mkt"\ndelete_unmatched = true')
    errors = [e for e in files.errors(text) if e.key == "integrations.crm-mkt.delete_unmatched"]
    error = next(e for e in errors if "`read_record`" in e.message)
    assert "`crm` (kind crm)" in error.message and "of the source" in error.message


def test_consents_need_consent_changes_of_the_destination_and_consent_writes_of_the_source(
        files):
    files.registry.connectors["mkt"] = PlainMarketing
    files.registry.connectors["crm"] = PlainCrm
    errors = [e for e in files.errors(VALID) if e.key == "integrations.crm-mkt.consents"]
    messages = " | ".join(e.message for e in errors)
    assert "`read_consent_changes` of the destination" in messages and "`mkt`" in messages
    assert "`write_consents` of the source" in messages and "`crm`" in messages


def test_selections_and_overviews_need_groups_of_the_source(files):
    files.registry.connectors["crm"] = PlainCrm
    files.registry.connectors["mkt"] = PlainMarketing
    text = without_consents_and_selections() + (
        '[integrations.crm-mkt.selections]\n"Readers" = "reader"\n\n'
        '[[integrations.crm-mkt.overviews]]\nname = "Jansens"\ntag = "jansen"\n')
    selections = files.error(text, "integrations.crm-mkt.selections")
    overviews = files.error(text, "integrations.crm-mkt.overviews")
    for error in (selections, overviews):
        assert "`read_groups` of the source" in error.message and "`crm` (kind crm)" in \
            error.message


def test_a_plain_pair_without_those_settings_loads(files):
    files.registry.connectors["crm"] = PlainCrm
    files.registry.connectors["mkt"] = PlainMarketing
    config = files.load(without_consents_and_selections())
    assert "crm-mkt" in config.integrations


@pytest.mark.parametrize("bulk_threshold", [0, 10])
def test_large_full_syncs_need_no_bulk_writes(files, bulk_threshold):
    files.registry.connectors["mkt"] = PlainMarketing
    text = edit('destination = "mkt"', f'destination = "mkt"\nbulk_threshold = {bulk_threshold}',
                without_consents_and_selections())
    assert "crm-mkt" in files.load(text).integrations


def test_required_lists_each_setting():
    integration = IntegrationConfig(
        name="i", source="crm", destination="mkt", delete_unmatched=True,
        consents=(ConsentMapping("News", "news", "email"),), selections={"Readers": "r"})
    needs = required(integration)
    assert Requirement("destination", Capability.DELETE_PROFILES, "delete_unmatched") in needs
    assert Requirement("source", Capability.READ_RECORD, "delete_unmatched") in needs
    assert Requirement("destination", Capability.READ_CONSENT_CHANGES, "consents") in needs
    assert Requirement("source", Capability.READ_GROUPS, "selections") in needs
    assert {n.capability for n in needs} <= set(Capability)
    assert not [n for n in needs if n.capability is Capability.BULK_WRITE]




def test_live_dry_runs_need_profile_reads_of_the_destination(files):
    files.registry.connectors["mkt"] = PlainMarketing
    text = edit('destination = "mkt"', 'destination = "mkt"\ndry_run_read = "live"',
                without_consents_and_selections())
    error = files.error(text, "integrations.crm-mkt.dry_run_read")
    assert "`read_profiles` of the destination" in error.message
    assert "`mkt` (kind mkt)" in error.message and "remove `dry_run_read`" in error.fix


@pytest.mark.parametrize("value", ["auto", "known"])
def test_dry_runs_that_may_fall_back_need_no_profile_reads(files, value):
    files.registry.connectors["mkt"] = PlainMarketing
    text = edit('destination = "mkt"', f'destination = "mkt"\ndry_run_read = "{value}"',
                without_consents_and_selections())
    assert files.load(text).integrations["crm-mkt"].dry_run_read == value


def test_dry_run_read_takes_only_its_choices(files):
    text = edit('destination = "mkt"', 'destination = "mkt"\ndry_run_read = "always"')
    assert "auto" in files.error(text, "integrations.crm-mkt.dry_run_read").message + \
        files.error(text, "integrations.crm-mkt.dry_run_read").fix
