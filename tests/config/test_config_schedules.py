"""daily_creation, daily_creation_overlap and [[integrations.NAME.overviews]]: loaded, checked
with clear errors, and never a reason for a full sync on reload."""

from __future__ import annotations

from dataclasses import replace

import pytest
from config_support import VALID

from syncd.config import describe, diff
from syncd.config.model import Overview, Schedule

I = "integrations.crm-mkt"  # noqa: E741


def with_keys(keys: str = "", overviews: str = "") -> str:
    """VALID with ``keys`` in [integrations.crm-mkt] and ``overviews`` appended."""
    text = VALID.replace('destination = "mkt"\n', f'destination = "mkt"\n{keys}\n', 1)
    return text + overviews


OVERVIEWS = f"""
[[{I}.overviews]]
name = "Event visitors"
tag = "event-visitor"
schedule = {{ at = "6:05", timezone = "Europe/Amsterdam", days = ["Monday", "fri", "mon"] }}

[[{I}.overviews]]
name = "Trade fair leads"
tag = "trade-fair"
"""


def test_defaults_no_jobs(files):
    integration = files.load(VALID).integrations["crm-mkt"]
    assert integration.daily_creation is None
    assert integration.daily_creation_overlap == 3600.0
    assert integration.overviews == ()


def test_schedules_and_overviews_load(files):
    text = with_keys('daily_creation = { at = "02:30", timezone = "Europe/Amsterdam" }\n'
                     "daily_creation_overlap = 600", OVERVIEWS)
    integration = files.load(text).integrations["crm-mkt"]
    assert integration.daily_creation == Schedule("02:30", "Europe/Amsterdam")
    assert integration.daily_creation_overlap == 600.0
    assert integration.overviews == (
        Overview("Event visitors", "event-visitor",
                 Schedule("06:05", "Europe/Amsterdam", ("mon", "fri"))),
        Overview("Trade fair leads", "trade-fair", None),
    )


def test_missing_timezone_names_the_key_and_shows_an_example(files):
    error = files.error(with_keys('daily_creation = { at = "02:30" }'),
                        f"{I}.daily_creation.timezone")
    assert "required" in error.message and "time zone" in error.message
    assert 'daily_creation = { at = "02:30", timezone = "Europe/Amsterdam" }' in error.fix


@pytest.mark.parametrize("tz,guess", [("Amsterdam", "Europe/Amsterdam"),
                                      ("Europe/Amsterdamm", "Europe/Amsterdam"),
                                      ("CEST", None), ("/etc/localtime", None)])
def test_unknown_timezone(files, tz, guess):
    text = with_keys(f'daily_creation = {{ at = "02:30", timezone = "{tz}" }}')
    error = files.error(text, f"{I}.daily_creation.timezone")
    assert "IANA time zone" in error.message and tz in error.message
    assert 'timezone = "Europe/Amsterdam"' in error.fix
    if guess:
        assert f'did you mean `timezone = "{guess}"`' in error.fix


@pytest.mark.parametrize("at", ["24:00", "2:30 PM", "0230", "12:60", ""])
def test_bad_time(files, at):
    text = with_keys(f'daily_creation = {{ at = "{at}", timezone = "UTC" }}')
    error = files.error(text, f"{I}.daily_creation.at")
    assert "24-hour" in error.message and 'at = "02:30"' in error.fix


def test_schedule_must_be_a_table(files):
    error = files.error(with_keys('daily_creation = "02:30"'), f"{I}.daily_creation")
    assert "must be a table" in error.message
    assert 'timezone = "Europe/Amsterdam"' in error.fix


def test_schedule_unknown_key_and_bad_days(files):
    text = with_keys('daily_creation = { at = "02:30", timezone = "UTC", day = ["mon"] }')
    assert "did you mean `days`" in files.error(text, f"{I}.daily_creation.day").fix
    text = with_keys('daily_creation = { at = "02:30", timezone = "UTC", days = ["mnday"] }')
    error = files.error(text, f"{I}.daily_creation.days[0]")
    assert "not a weekday" in error.message and '"mon"' in error.fix
    text = with_keys('daily_creation = { at = "02:30", timezone = "UTC", days = [] }')
    assert "leave `days` out" in files.error(text, f"{I}.daily_creation.days").fix


def test_overview_errors(files):
    text = with_keys(overviews=f"""
[[{I}.overviews]]
name = "Event visitors"
tag = "a"

[[{I}.overviews]]
name = "Event visitors"
tag = "b"
schedule = {{ at = "06:00" }}

[[{I}.overviews]]
tag = "c"
""")
    errors = {e.key: e for e in files.errors(text)}
    assert "already configured in overviews[0]" in errors[f"{I}.overviews[1].name"].message
    assert f"{I}.overviews[1].schedule.timezone" in errors
    assert "required" in errors[f"{I}.overviews[2].name"].message


def test_overviews_must_be_an_array_of_tables(files):
    text = with_keys(overviews=f'\n[{I}.overviews]\nname = "x"\ntag = "y"\n')
    assert "array of tables" in files.error(text, f"{I}.overviews").message


def test_negative_overlap(files):
    error = files.error(with_keys("daily_creation_overlap = -1"),
                        f"{I}.daily_creation_overlap")
    assert "at least 0" in error.message


@pytest.mark.parametrize("change", [
    {"daily_creation": Schedule("03:00", "Europe/Amsterdam")},
    {"daily_creation": None},
    {"daily_creation_overlap": 60.0},
    {"overviews": (Overview("Event visitors", "visitor", None),)},
    {"overviews": (Overview("Event visitors", "event-visitor", Schedule("07:00", "UTC")),)},
])
def test_schedule_and_overview_changes_need_no_full_sync(files, change):
    old = files.load(with_keys(
        'daily_creation = { at = "02:30", timezone = "Europe/Amsterdam" }', OVERVIEWS))
    integration = replace(old.integrations["crm-mkt"], **change)
    new = replace(old, integrations={"crm-mkt": integration})
    d = diff(old, new)
    assert d.integrations_changed == ("crm-mkt",)
    assert d.needs_full_sync == ()


def test_describe_shows_schedules_as_plain_data(files):
    config = files.load(with_keys(
        'daily_creation = { at = "02:30", timezone = "Europe/Amsterdam" }', OVERVIEWS))
    data = describe(config)["integrations"]["crm-mkt"]
    assert data["daily_creation"] == {"at": "02:30", "timezone": "Europe/Amsterdam",
                                      "days": []}
    assert data["overviews"][1] == {"name": "Trade fair leads", "tag": "trade-fair",
                                    "schedule": None}
