"""SIGKILL between a Graph write and its bookkeeping: the contacts were created in Outlook
but syncd's pairs still say 'creating'; the next run finds them by their connector id and
creates no duplicate. Also a lost answer in-process (the connection dropped after the batch
was applied)."""

from __future__ import annotations

import json
import os
import sys

from syncd_tribe.connector import TribeConnector

from syncd.testing import ChildProcess, wait_for

ANNA = "anna@contoso.example"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_sigkill_between_the_graph_write_and_its_bookkeeping(world, tmp_path):
    employee = world.employee(ANNA)
    keys = {world.contact(manager=ANNA, LastName=f"K{i}") for i in range(5)}
    link = world.link_user(ANNA)  # links the mailbox: the token cache is on disk
    graph = world.graph_emu
    # the batch is applied, then its answer hangs: the child is killed while it waits
    graph.set_faults(fail_after_next=[504], fail_after_path="$batch", hang_seconds=30)
    spec = {"state_dir": str(tmp_path), "user": ANNA, "employee": employee,
            "ms365": dict(world.connector.config),
            "tribe": TribeConnector.sandbox_config(world.tribe_emu)}
    child = ChildProcess([sys.executable, "-m", "tests.ms365.crash_child", json.dumps(spec)],
                         tmp_path / "child.log", cwd=ROOT).start()
    try:
        assert wait_for(lambda: len(world.outlook(ANNA)) == 5, timeout=60), child.log_tail()
        assert child.running(), child.log_tail()
    finally:
        child.kill()  # SIGKILL, and waits until it is gone
    assert {world.pairs.get(ANNA, k).state for k in keys} == {"creating"}
    graph.set_faults(fail_after_next=[], hang_seconds=0.0)
    link.initial_sync()  # the next run
    assert len(world.outlook(ANNA)) == 5
    assert set(world.outlook_by_key(ANNA)) == keys
    assert {world.pairs.get(ANNA, k).state for k in keys} == {"linked"}
    assert link.counts["adopted"] == 5 and link.counts["created"] == 0


def test_a_lost_batch_answer_creates_no_duplicate(world):
    world.employee(ANNA)
    keys = {world.contact(manager=ANNA, LastName=f"L{i}") for i in range(3)}
    link = world.link_user(ANNA)
    world.graph_emu.set_faults(fail_after_next=[0], fail_after_path="$batch")
    link.initial_sync()
    assert len(world.outlook(ANNA)) == 3 and set(world.outlook_by_key(ANNA)) == keys
    assert link.counts["adopted"] == 3
