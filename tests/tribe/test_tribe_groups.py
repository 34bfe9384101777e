"""Overviews and selections reproduced as OData filters on persons."""

import pytest


def test_read_group_returns_the_persons_its_filter_selects(emulator, make_connector, paging):
    emulator.seed(60, seed=3)
    names = sorted({p["LastName"] for p in emulator.persons()})
    wanted = names[0]
    connector = make_connector(groups={"Some": f"LastName eq '{wanted}'"})
    expected = sorted(p["ID"] for p in emulator.persons() if p["LastName"] == wanted)
    assert expected
    assert sorted(connector.read_group("Some")) == expected


def test_an_unknown_group_names_the_fix(make_connector):
    connector = make_connector(groups={})
    with pytest.raises(ValueError, match="groups option"):
        connector.read_group("Nope")
