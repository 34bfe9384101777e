"""The link within Graph's limits: a mailbox budget small enough to be hit answers per-item
429s in $batch and 429s on requests; the connector holds the whole mailbox for each
Retry-After (0 violations) and every contact is still created exactly once."""

from __future__ import annotations

ANNA = "anna@contoso.example"


def test_initial_sync_through_429s_without_violations(world):
    world.employee(ANNA)
    keys = {world.contact(manager=ANNA, LastName=f"L{i}", EmailAddress=f"c{i}@x.example")
            for i in range(45)}
    link = world.link_user(ANNA)
    graph = world.graph_emu
    graph.request_budget, graph.budget_window = 20, 1.0
    graph.retry_after_grace = 0.0
    link.initial_sync()
    assert set(world.outlook_by_key(ANNA)) == keys
    assert len(world.outlook(ANNA)) == 45  # none twice
    stats = graph.stats()
    assert stats["by_status"].get("429", 0) + link.mailbox.graph.counts["throttled"] > 0
    assert stats["retry_after_violations"] == 0
