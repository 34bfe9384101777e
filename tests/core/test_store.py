import os
import signal
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from syncd.engine.store import SCHEMA_VERSION, Store, StoreError
from syncd.records import Event, Link


def test_schema_version_and_wal(store):
    assert store.schema_version() == SCHEMA_VERSION
    mode = sqlite3.connect(store.path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_newer_schema_is_refused(tmp_path):
    path = str(tmp_path / "x.db")
    Store(path).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value='999' WHERE key='schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer"):
        Store(path)


def test_inbox_order_retry_and_dead_letters(store):
    ids = store.enqueue([("i", "c", Event("a")), ("i", "c", Event("b", kind="created")),
                         ("j", "c", Event("a"))])
    assert [x.event.record_id for x in store.pending("i")] == ["a", "b"]
    store.mark_retry([ids[0]], "boom", delay=60)
    assert [x.event.record_id for x in store.pending("i")] == ["b"]
    store.mark_dead([ids[1]], "gone for good")
    dead = store.dead_letters("i")
    assert [(d.id, d.last_error) for d in dead] == [(ids[1], "gone for good")]
    assert store.retry_dead([ids[1]]) == 1
    assert [x.id for x in store.pending("i")] == [ids[1]]
    store.mark_done([ids[1]])
    assert store.pending("i") == []
    assert store.pending_count("j") == 1


def test_links_and_digests(store):
    store.save_links("i", [("p1", "p1", "d1", {"t": {"vip": True}}), ("p2", "p2", "d2", None)])
    assert store.links("i", ["p1", "p3"]) == {"p1": Link("p1", "d1", {"t": {"vip": True}})}
    store.forget_digests("i")
    assert store.links("i", ["p1"]) == {"p1": Link("p1", None, {"t": {"vip": True}})}
    store.delete_links("i", ["p1"])
    assert store.link_count("i") == 1


def test_runs_progress_and_errors(store):
    run = store.start_run("i", "full")
    store.progress_run(run, {"processed": 3, "created": 2, "failed": 1}, cursor="200",
                       total=10, errors=[("p9", "bad e-mail", False)])
    store.progress_run(run, {"processed": 2, "unchanged": 2}, cursor=None)
    row = store.run(run)
    assert (row["processed"], row["created"], row["unchanged"], row["failed"]) == (5, 2, 2, 1)
    assert row["cursor"] == "200" and row["total"] == 10
    assert store.run_errors(run)[0]["reason"] == "bad e-mail"
    store.finish_run(run, "completed")
    assert store.runs("i")[0]["status"] == "completed"


def test_running_runs_become_interrupted(store):
    run = store.start_run("i", "full")
    assert [r["id"] for r in store.interrupt_running()] == [run]
    assert store.run(run)["status"] == "interrupted"


def test_enqueue_in_a_readonly_database_raises_store_error(tmp_path):
    path = tmp_path / "ro.db"
    Store(str(path)).close()
    os.chmod(path, 0o400)
    if os.geteuid() == 0:
        pytest.skip("root ignores file modes")
    s = Store(str(path))
    with pytest.raises(StoreError):
        s.enqueue([("i", "c", Event("a"))])


def test_committed_events_survive_sigkill(tmp_path):
    """What enqueue returned for is on disk, even if the process dies right after."""
    path = tmp_path / "k.db"
    code = textwrap.dedent(f"""
        import os, signal, sys
        from syncd.engine.store import Store
        from syncd.records import Event, Link
        s = Store({str(path)!r})
        for i in range(200):
            s.enqueue([("i", "c", Event(str(i)))])
        print("acked", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.stdout.strip() == "acked"  # and the process is gone (run waits for it)
    s = Store(str(path))
    assert s.pending_count("i") == 200
    s.close()


@pytest.mark.parametrize("durability", ["full", "normal"])
def test_every_acknowledged_event_of_concurrent_group_commits_survives_sigkill(
        tmp_path, durability):
    """Eight threads enqueue at once (their events share commits); each prints an id once
    enqueue returned, and the process is killed mid-stream: every printed id is on disk."""
    path = tmp_path / "gk.db"
    code = textwrap.dedent(f"""
        import os, signal, threading
        from syncd.engine.store import Store
        from syncd.records import Event
        s = Store({str(path)!r}, durability={durability!r})
        acked = [0]
        lock = threading.Lock()

        def run(n):
            for i in range(10_000):
                s.enqueue([("i", "c", Event(f"{{n}}-{{i}}"))])
                os.write(1, f"{{n}}-{{i}}\\n".encode())
                with lock:
                    acked[0] += 1
                    if acked[0] == 1500:
                        os.kill(os.getpid(), signal.SIGKILL)

        threads = [threading.Thread(target=run, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == -signal.SIGKILL
    acked = set(proc.stdout.split())
    assert len(acked) >= 1500
    s = Store(str(path))
    stored = {r["record_id"] for r in s._read("SELECT record_id FROM inbox")}
    assert acked <= stored
    s.close()
