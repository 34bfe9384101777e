"""The CLI's side of the admin endpoint: the token goes to loopback only, and remote text is
shown as it is (never read as rich markup)."""

from __future__ import annotations

import socket
import threading

import pytest

from syncd.app import cli
from syncd.app.admin import AdminApp
from syncd.web.wsgi import ServerThread

TOKEN = "tok-cli-0123456789abcdef"
MARKUP = "[/b] closing nothing [red]red?[/red] [bold]x"


class StatusControl:
    def __init__(self):
        self.calls = 0

    def status(self):
        self.calls += 1
        return {
            "pid": 42, "uptime": 3.0, "config": "/etc/[b]syncd.toml", "receiver": "ok",
            "reload_errors": [f"connections.crm.base_url: {MARKUP}"],
            "connections": {"crm": {"kind": "tribe", "state": "failed", "restarts": 2,
                                    "last_failure": f"HTTPError 400: {MARKUP}"}},
            "integrations": {"crm-mkt": {
                "state": "idle", "processed": 0, "total": None, "inbox": {"pending": 3},
                "dead_letters": 1, "needs_full_sync": False,
                "last_run": {"id": 9, "status": "failed"}, "last_error": f"[/] {MARKUP}"}},
            "jobs": [{"id": "daily [/i]", "next_run": None}],
            "webhooks": {"received": 9, "accepted": 3, "events": 4, "rejected": {"401": 6},
                         "reasons": {"rejected_401": 5, "[b]odd": 1}},
        }


def write_config(tmp_path, host: str, port: int) -> str:
    (tmp_path / "admin.token").write_text(TOKEN + "\n")
    path = tmp_path / "syncd.toml"
    path.write_text(f'[daemon]\nstate_dir = "{tmp_path}"\n\n'
                    f'[admin]\nhost = "{host}"\nport = {port}\n')
    return str(path)


@pytest.fixture
def listener():
    """A plain TCP listener on every address that records whether anything connected."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("0.0.0.0", 0))
    sock.listen(8)
    sock.settimeout(0.2)
    received: list[bytes] = []
    done = threading.Event()

    def accept():
        while not done.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(1)
                try:
                    received.append(conn.recv(65536))
                except OSError:
                    received.append(b"")

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield sock.getsockname()[1], received
    done.set()
    thread.join(5)
    sock.close()


@pytest.mark.parametrize("host", ["0.0.0.0", "10.20.30.40", "syncd.example.com",
                                  "127.0.0.1.example.com", "::"])
def test_cli_refuses_a_host_that_is_not_loopback(tmp_path, capsys, listener, host):
    port, received = listener
    path = write_config(tmp_path, host, port)
    assert cli.main(["status", "-c", path]) == 1
    err = capsys.readouterr()
    assert "not a loopback address" in err.err and '"127.0.0.1"' in err.err
    assert TOKEN not in err.out + err.err
    assert received == []  # nothing reached the port: 0.0.0.0 would have been this machine


def test_cli_sends_the_token_to_loopback(tmp_path, capsys):
    control = StatusControl()
    srv = ServerThread(AdminApp(control, TOKEN), "127.0.0.1", 0, threads=2, name="admin")
    srv.start()
    try:
        assert cli.main(["status", "--json", "-c", write_config(tmp_path, "localhost",
                                                                 srv.port)]) == 0
    finally:
        srv.stop()
    assert control.calls == 1 and '"pid": 42' in capsys.readouterr().out


def test_status_shows_remote_markup_literally(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")
    control = StatusControl()
    srv = ServerThread(AdminApp(control, TOKEN), "127.0.0.1", 0, threads=2, name="admin")
    srv.start()
    try:
        code = cli.main(["status", "-c", write_config(tmp_path, "127.0.0.1", srv.port)])
    finally:
        srv.stop()
    out = capsys.readouterr().out
    assert code == 0 and control.calls == 1
    assert out.count(MARKUP) == 3  # reload error, connection failure, integration error
    assert "webhooks: received 9, accepted 3 (4 events), refused 6 ([b]odd 1, rejected_401 5)" \
        in out
    assert "[/] [/b]" in out and "daily [/i]" in out and "/etc/[b]syncd.toml" in out
