"""The OData filter parser and the query helpers (no HTTP)."""

from __future__ import annotations

import pytest
from syncd_tribe.client import any_of, literal, query_string, quote_string
from syncd_tribe.odata import (
    ODataError,
    compile_filter,
    eq_candidates,
    parse_expand,
    parse_filter,
    parse_orderby,
    parse_select,
)

PEOPLE = {
    "p1": {"ID": "0a7c3a52-6c1f-4b55-9b0e-2f7d4f1b0001", "FirstName": "Jan", "LastName": "de Vries",
           "Age": 41, "Active": True, "Email": "jan@acme.nl", "Modified": "2024-03-01T10:00:00Z",
           "Org": "o1"},
    "p2": {"ID": "0a7c3a52-6c1f-4b55-9b0e-2f7d4f1b0002", "FirstName": "Anna", "LastName": "O'Neill",
           "Age": 29, "Active": False, "Email": None, "Modified": "2024-05-01T10:00:00+02:00",
           "Org": "o2"},
    "p3": {"ID": "0a7c3a52-6c1f-4b55-9b0e-2f7d4f1b0003", "FirstName": "Piet", "LastName": "Bakker",
           "Age": 65, "Active": True, "Email": "PIET@Example.com", "Modified": None, "Org": None},
}
ORGS = {"o1": {"Name": "Acme"}, "o2": {"Name": "Beta B.V."}}


def get(pid, path):
    entity = PEOPLE[pid]
    if path[0] == "Organization":
        org = ORGS.get(entity["Org"])
        return None if org is None else org.get(path[1])
    return entity.get(path[0])


def matching(text: str) -> list[str]:
    predicate = compile_filter(parse_filter(text), get)
    return [pid for pid in PEOPLE if predicate(pid)]


CASES = {
    "eq string": ("FirstName eq 'Jan'", ["p1"]),
    "eq is case-insensitive": ("FirstName eq 'jan'", ["p1"]),
    "ne": ("FirstName ne 'Jan'", ["p2", "p3"]),
    "gt number": ("Age gt 41", ["p3"]),
    "ge number": ("Age ge 41", ["p1", "p3"]),
    "lt number": ("Age lt 41", ["p2"]),
    "le number": ("Age le 41", ["p1", "p2"]),
    "escaped quote": ("LastName eq 'O''Neill'", ["p2"]),
    "bool": ("Active eq true", ["p1", "p3"]),
    "null": ("Email eq null", ["p2"]),
    "not null": ("Email ne null", ["p1", "p3"]),
    "and binds tighter than or": ("Age gt 60 or Age lt 30 and Active eq true", ["p3"]),
    "parentheses": ("(Age gt 60 or Age lt 30) and Active eq false", ["p2"]),
    "not": ("not (Active eq true)", ["p2"]),
    "not without parentheses": ("not Active eq true", ["p2"]),
    "contains, case-insensitive": ("contains(LastName, 'VRIES')", ["p1"]),
    "startswith": ("startswith(Email, 'piet@')", ["p3"]),
    "endswith": ("endswith(Email, '.NL')", ["p1"]),
    "function on null is false": ("contains(Email, '@')", ["p1", "p3"]),
    "navigation path": ("Organization/Name eq 'Beta B.V.'", ["p2"]),
    "datetime literal vs offset": ("Modified ge 2024-05-01T08:00:00Z", ["p2"]),
    "datetime range": ("Modified gt 2024-01-01T00:00:00Z and Modified lt 2024-04-01T00:00:00Z",
                       ["p1"]),
    "null never orders": ("Modified lt 2030-01-01T00:00:00Z", ["p1", "p2"]),
    "guid literal unquoted": ("ID eq 0A7C3A52-6C1F-4B55-9B0E-2F7D4F1B0002", ["p2"]),
    "guid quoted": ("ID eq '0a7c3a52-6c1f-4b55-9b0e-2f7d4f1b0003'", ["p3"]),
    "the ETL incremental filter": ("(CreationDate ge 2024-01-01T00:00:00Z) or "
                                   "(Modified ge 2024-04-01T00:00:00Z)", ["p2"]),
    "tolower": ("tolower(Email) eq 'piet@example.com'", ["p3"]),
}


@pytest.mark.parametrize("text,expected", list(CASES.values()), ids=list(CASES))
def test_filter(text, expected):
    assert matching(text) == expected


@pytest.mark.parametrize("text,message", [
    ("FirstName in ('Jan', 'Anna')", "'in' is not supported"),
    ("Flags has 'A'", "'has' is not supported"),
    ("FirstName eq", "unexpected"),
    ("FirstName eq 'Jan' and", "unexpected"),
    ("(FirstName eq 'Jan'", r"expected '\)'"),
    ("substringof('a', FirstName)", "'substringof' is not supported"),
    ("FirstName eq 'unterminated", "unexpected character"),
    ("Age eq 1 Age", "unexpected"),
    ("", "empty"),
])
def test_filter_rejects(text, message):
    with pytest.raises(ODataError, match=message):
        parse_filter(text)


def test_eq_candidates_find_indexable_filters():
    assert eq_candidates(parse_filter("Person/ID eq 'a' or Person/ID eq 'b'")) == \
        (("Person", "ID"), {"a", "b"})
    assert eq_candidates(parse_filter("ID eq 'a' and Age gt 3")) == (("ID",), {"a"})
    assert eq_candidates(parse_filter("ID eq 'a' or Age gt 3")) is None
    assert eq_candidates(parse_filter("ID eq 'a' or Name eq 'b'")) is None


def test_orderby_select_expand():
    assert parse_orderby("LastName desc, ID") == [(("LastName",), True), (("ID",), False)]
    with pytest.raises(ODataError):
        parse_orderby("LastName sideways")
    assert parse_select("ID,Name") == ["ID", "Name"]
    assert parse_select("*") is None
    assert parse_expand("InvoiceAddress($select=City;$expand=Country($select=Name)),Labels") == {
        "InvoiceAddress": {"select": ["City"], "expand": {
            "Country": {"select": ["Name"], "expand": {}}}},
        "Labels": {"select": None, "expand": {}},
    }
    with pytest.raises(ODataError):
        parse_expand("Relation($top=3")


def test_client_literals():
    assert quote_string("Peter's company") == "'Peter''s company'"
    assert literal("O'Neill") == "'O''Neill'"
    assert literal("0A7C3A52-6C1F-4B55-9B0E-2F7D4F1B0002") == \
        "0A7C3A52-6C1F-4B55-9B0E-2F7D4F1B0002"
    assert literal(None) == "null" and literal(True) == "true" and literal(3) == "3"
    assert any_of("Person/ID", ["a", "b"]) == "Person/ID eq 'a' or Person/ID eq 'b'"
    # a quote in a value can never end the literal early: the parser reads it back whole
    hostile = "x' or ID ne 'y"
    assert compile_filter(parse_filter(f"FirstName eq {literal(hostile)}"), get)("p1") is False
    assert query_string({"$filter": "A eq 'b c'", "$top": 5, "$skip": None}) == \
        "$filter=A%20eq%20%27b%20c%27&$top=5"
