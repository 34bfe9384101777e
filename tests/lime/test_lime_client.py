"""The Lime client against the emulator: HAL paging to the end under every paging setting
(a short page is never the end alone), a server that ignores ``_offset``, next links off the
API's host, and the per-IP budget's 429 with and without Retry-After."""

from __future__ import annotations

import pytest
import responses
from syncd_lime.client import LimeClient
from syncd_lime.paging import PageState, PagingError

from tests.lime.conftest import SEEDED


def client(emulator, **options) -> LimeClient:
    return LimeClient({"base_url": emulator.url, "api_key": emulator.api_key,
                       "max_attempts": 4, **options})


def test_pages_to_the_end_on_short_pages(emulator, paging):
    c = client(emulator)
    ids = [r["_id"] for r in c.iterate("person", page_size=20)]
    assert ids == sorted(ids) and len(ids) == SEEDED == len(set(ids))
    # the cost: at most the final empty page beyond the pages the rows need
    rows_a_page = 7 if paging != "uncapped" else 20
    assert emulator.list_requests["person"] <= -(-SEEDED // rows_a_page) + 1
    assert emulator.empty_pages.get("person", 0) <= 1


def test_filters_page_to_the_end_too(emulator, paging):
    c = client(emulator)
    want = sorted(o["_id"] for o in emulator.store.objects["person"].values()
                  if o["customertype"] == "A")
    got = [r["_id"] for r in c.iterate("person", page_size=5,
                                       filters=[("customertype", "A")])]
    assert got == want


def test_a_server_that_ignores_offset_fails_the_read(emulator):
    emulator.ignore_offset, emulator.next_links, emulator.page_cap = True, False, 7
    with pytest.raises(PagingError, match="ignores _offset"):
        list(client(emulator).iterate("person", page_size=7))


def test_cursor_round_trip():
    state = PageState(40, "1040", "http://x/api/v1/limeobject/person/?_offset=40")
    assert PageState.decode(state.encode()) == state
    assert PageState.decode(None) == PageState()


@responses.activate
def test_a_next_link_to_another_host_is_not_followed():
    responses.get("https://lime.example/app/api/v1/limeobject/person/", json={
        "_embedded": {"limeobjects": [{"_id": 1}]},
        "_links": {"next": {"href": "https://evil.example/app/api/v1/limeobject/person/"}}})
    c = LimeClient({"base_url": "https://lime.example/app", "api_key": "k"})
    with pytest.raises(Exception, match="does not send its API key elsewhere"):
        list(c.iterate("person"))
    assert len(responses.calls) == 1
    assert responses.calls[0].request.headers["X-API-Key"] == "k"


@pytest.mark.parametrize("retry_after", [True, False])
def test_the_budget_429_is_retried_without_violating_retry_after(emulator, retry_after):
    emulator.request_budget, emulator.budget_window = 5, 1.0
    emulator.retry_after = retry_after
    c = client(emulator, max_attempts=8)
    ids = [r["_id"] for r in c.iterate("person", page_size=5)]
    assert len(ids) == SEEDED
    stats = emulator.stats()
    assert stats["by_status"].get("429", 0) >= 1
    assert stats["retry_after_violations"] == 0


def test_once_next_links_are_seen_a_page_without_one_is_the_end(emulator):
    c = client(emulator)
    list(c.iterate("consenttype"))  # one short page, no next: ask once more to be sure
    assert emulator.list_requests["consenttype"] == 2 and not c.sends_next
    assert len(list(c.iterate("person", page_size=25))) == SEEDED  # next links seen
    assert c.sends_next
    list(c.iterate("consenttype"))
    assert emulator.list_requests["consenttype"] == 3  # the short page without next ends it


def test_without_next_links_short_pages_never_end_a_list(emulator):
    emulator.page_cap, emulator.next_links = 7, False
    c = client(emulator)
    assert len(list(c.iterate("person", page_size=25))) == SEEDED
    assert not c.sends_next
