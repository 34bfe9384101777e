"""`syncd status` shows the stop-and-confirm guard; `syncd confirm NAME` asks the daemon."""

import pytest

from syncd.app import cli, cli_common


class FakeClient:
    def __init__(self, guard):
        self.guard = guard
        self.confirmed = []

    def status(self):
        return {"pid": 1, "uptime": 3.0, "config": "x.toml", "receiver": None,
                "connections": {}, "jobs": [],
                "integrations": {"main": {
                    "state": "idle", "processed": 0, "total": None, "inbox": {},
                    "dead_letters": 0, "needs_full_sync": False, "last_run": None,
                    "last_error": None, "guard": self.guard}}}

    def confirm(self, name):
        self.confirmed.append(name)
        return {"integration": name, "released": 12, "records": 10, "write_backs": 2}


@pytest.fixture
def client(monkeypatch):
    fake = FakeClient(None)
    monkeypatch.setattr(cli_common, "admin_client", lambda args: fake)
    monkeypatch.setenv("COLUMNS", "250")
    return fake


def test_status_shows_a_held_guard_and_how_to_confirm(client, capsys):
    client.guard = {"count": 10, "limit": 10, "window": 86400.0, "held_since": 1.7e9,
                    "reason": "more than 10% of 20 profiles [b]would[/b] change",
                    "held": {"consent": 7, "delete": 3}, "confirm": "syncd confirm main"}
    assert cli.main(["status"]) == 0
    out = capsys.readouterr().out
    assert "HELD 10/10 in 24h" in out
    assert "main holds consent changes and deletes" in out
    assert "7 consent, 3 delete" in out and "[b]would[/b]" in out
    assert "to let them go: syncd confirm main" in out


def test_status_shows_the_count_of_a_guard_that_does_not_hold(client, capsys):
    client.guard = {"count": 3, "limit": 100, "window": 3600.0, "held_since": None,
                    "reason": None, "held": {}, "confirm": None}
    assert cli.main(["status"]) == 0
    out = capsys.readouterr().out
    assert "3/100 in 1h" in out and "HELD" not in out and "syncd confirm" not in out


def test_confirm_asks_the_daemon(client, capsys):
    assert cli.main(["confirm", "main"]) == 0
    assert client.confirmed == ["main"]
    assert "10 held record(s)" in capsys.readouterr().out
