"""Two integrations into one destination: the store tells a profile of another integration
from one of this integration's (consent changes are written back only to their own source)."""

from __future__ import annotations

from syncd.engine.store import Store


def test_linked_elsewhere(tmp_path):
    store = Store(str(tmp_path / "state.db"))
    try:
        store.save_links("tribe-apsis", [("guid-1", "guid-1", None, {}),
                                         ("shared", "shared", None, {})])
        store.save_links("lime-apsis", [("1001", "1001", None, {}),
                                        ("shared", "shared", None, {})])
        keys = ["guid-1", "1001", "shared", "unknown"]
        assert store.linked_elsewhere("lime-apsis", keys) == {"guid-1"}
        assert store.linked_elsewhere("tribe-apsis", keys) == {"1001"}
        assert store.linked_elsewhere("other", keys) == {"guid-1", "1001", "shared"}
        assert store.linked_elsewhere("lime-apsis", []) == set()
    finally:
        store.close()
