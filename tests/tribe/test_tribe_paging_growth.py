"""Paging a collection that grows while it is read (persons created during a full sync, as
the chaos tests do): the guard against a server that ignores ``$skip`` must not mistake
growth for it. It compares a page's first row with the *first page's*: a short last page of
six rows, then six persons created ahead of it, starts the next page with the row that
started the page before, and that is growth, not a loop."""

from __future__ import annotations

import pytest
from syncd_tribe.paging import PageState, PagingError, next_page


def reader(rows: list[str], top: int):
    def query(skip: int) -> dict:
        return {"value": [{"ID": i} for i in rows[skip:skip + top]]}
    return query


def never(link: str) -> dict:
    raise AssertionError("no nextLink expected")


def test_a_page_may_start_with_the_row_that_started_the_page_before():
    rows = [f"b{i:03d}" for i in range(16)]  # pages of 10: then a short one of 6
    query = reader(rows, 10)
    got, _, state = next_page(PageState(), query, never)
    got, _, state = next_page(state, query, never)
    assert [r["ID"] for r in got] == rows[10:16] and state.skip == 16
    rows[0:0] = [f"a{i}" for i in range(6)]  # six created ahead while the pages are written
    got, _, state = next_page(state, query, never)  # starts with b010 again: growth
    assert [r["ID"] for r in got] == ["b010", "b011", "b012", "b013", "b014", "b015"]
    got, _, state = next_page(state, query, never)
    assert got == [] and state is None


def test_a_server_that_ignores_skip_is_still_caught_at_the_second_page():
    rows = [f"b{i:03d}" for i in range(30)]

    def ignores_skip(skip: int) -> dict:
        return {"value": [{"ID": i} for i in rows[:10]]}

    _, _, state = next_page(PageState(), ignores_skip, never)
    with pytest.raises(PagingError, match="same first row"):
        next_page(state, ignores_skip, never)
    # and after a resume, from the cursor it committed
    with pytest.raises(PagingError, match="same first row"):
        next_page(PageState.decode(state.encode()), ignores_skip, never)
