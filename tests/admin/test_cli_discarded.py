"""``syncd status`` shows the messages a connection discarded (its stats' ``discarded``),
and the last ones with their reason and details (``discarded_recent``)."""

from __future__ import annotations

from syncd.app import cli
from syncd.app.admin import AdminApp
from syncd.web.wsgi import ServerThread
from tests.admin.test_cli_admin import TOKEN, write_config


class Control:
    def status(self):
        return {"pid": 1, "uptime": 1.0, "config": "c", "receiver": "r", "reload_errors": [],
                "connections": {"lime": {"kind": "lime", "state": "running", "restarts": 0,
                                         "last_failure": None, "stats": {
                                             "requests": 5, "discarded": {
                                                 "consent without a person": 2,
                                                 "consent without a consent type": 1},
                                             "discarded_recent": [
                                                 {"at": 1.8e9, "reason": "consent without a person",
                                                  "detail": {"consent": "5001",
                                                             "lime_event": "consent.new"}}]}},
                                "tribe": {"kind": "tribe", "state": "running", "restarts": 0,
                                          "last_failure": None, "stats": {"requests": 1}}},
                "integrations": {}, "jobs": [], "webhooks": {}}


def test_status_counts_discarded_messages_per_connection(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")
    srv = ServerThread(AdminApp(Control(), TOKEN), "127.0.0.1", 0, threads=2, name="admin")
    srv.start()
    try:
        assert cli.main(["status", "-c", write_config(tmp_path, "127.0.0.1", srv.port)]) == 0
    finally:
        srv.stop()
    out = capsys.readouterr().out
    assert ("lime discarded 3 message(s), nothing changed for them: consent without a "
            "consent type 1, consent without a person 2") in out
    assert "consent without a person (consent=5001, lime_event=consent.new)" in out
    assert "tribe discarded" not in out
