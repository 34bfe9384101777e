"""The APSIS access token outlives restarts (kept in the state directory, 0600) until it
expires; a refused one is dropped and replaced once."""

import json
import os
import stat

from syncd_apsis.connector import ApsisConnector

from syncd.records import Profile


def start(emu, state_dir, name="apsis"):
    config = {**ApsisConnector.sandbox_config(emu), "backoff": 0.02}
    config.pop("kind")
    conn = ApsisConnector(name, config)
    conn.state_dir = str(state_dir)
    conn.start()
    return conn


def write_one(conn, i=0):
    [r] = conn.write_profiles([Profile(key=f"crm-{i}", email=f"p{i}@example.nl")], set())
    assert r.outcome in ("created", "updated"), r.reason
    return r


def test_twelve_restarts_in_a_minute_ask_for_one_token(emu, tmp_path, capsys):
    assert emu.token_limit_per_minute == 10
    for i in range(12):
        conn = start(emu, tmp_path)
        write_one(conn, i)
        stats = conn.stats()
        conn.stop()
        assert stats["token_fetches"] == (1 if i == 0 else 0)
        assert stats["tokens_reused"] == (0 if i == 0 else 1)
    assert emu.tokens.issued == 1
    assert emu.stats()["by_status"].get("429") is None
    path = tmp_path / "apsis-tokens" / "apsis.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    token = json.loads(path.read_text())["access_token"]
    out = capsys.readouterr()
    assert token not in out.out + out.err


def test_a_refused_token_is_dropped_and_replaced_once(emu, tmp_path):
    conn = start(emu, tmp_path)
    write_one(conn)
    conn.stop()
    path = tmp_path / "apsis-tokens" / "apsis.json"
    old = json.loads(path.read_text())["access_token"]
    emu.tokens.expire_all()  # revoked in APSIS: the file's token now answers 401
    conn = start(emu, tmp_path)
    write_one(conn, 1)
    assert conn.stats()["token_fetches"] == 1
    conn.stop()
    assert json.loads(path.read_text())["access_token"] != old
    assert emu.tokens.issued == 2


def test_an_expired_or_foreign_token_file_is_not_used(emu, make_emulator, tmp_path):
    conn = start(emu, tmp_path)
    write_one(conn)
    conn.stop()
    path = tmp_path / "apsis-tokens" / "apsis.json"
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "expires_at": 1.0}))
    conn = start(emu, tmp_path)
    write_one(conn, 1)
    assert conn.stats()["token_fetches"] == 1
    conn.stop()
    other = make_emulator()  # another account (base URL): its own token
    conn = start(other, tmp_path)
    write_one(conn, 2)
    assert conn.stats()["token_fetches"] == 1 and other.tokens.issued == 1
    conn.stop()


def test_without_a_state_directory_nothing_is_written(emu, connect, tmp_path):
    conn = connect(emu)
    write_one(conn)
    assert conn.token_file() is None
    assert not any(tmp_path.iterdir())
