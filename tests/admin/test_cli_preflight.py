"""``syncd status`` shows each integration's preflight: problems, connection errors and
warnings, literally (account names are remote text)."""

from __future__ import annotations

from syncd.app import cli
from syncd.app.admin import AdminApp
from syncd.web.wsgi import ServerThread

TOKEN = "tok-cli-preflight-0123456789"
KEY = 'integrations.crm-mkt.fields."Contact.Organization.Name"'


class Control:
    def status(self):
        integration = {
            "state": "idle", "processed": 0, "total": None, "inbox": {}, "dead_letters": 0,
            "needs_full_sync": False, "last_run": None, "last_error": None}
        return {
            "pid": 1, "uptime": 1.0, "config": "/x.toml", "receiver": "r", "connections": {},
            "integrations": {
                "crm-mkt": {**integration, "preflight": {
                    "state": "problems", "connection_errors": [],
                    "problems": [f"{KEY}: section has no attribute 'companyname'; the account "
                                 f"has: company [b] (fix: did you mean \"company\"?)"],
                    "warnings": ["integrations.crm-mkt.selections.VIP: no tag 'vip' (yet)"]}},
                "other": {**integration, "preflight": {
                    "state": "connection_error", "problems": [], "warnings": [],
                    "connection_errors": ["connections.lime: token request failed with 401"]}},
                "clean": {**integration, "preflight": {
                    "state": "ok", "problems": [], "warnings": [], "connection_errors": []}},
            }}


def test_status_lists_preflight_problems_per_integration(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")
    (tmp_path / "admin.token").write_text(TOKEN + "\n")
    srv = ServerThread(AdminApp(Control(), TOKEN), "127.0.0.1", 0, threads=2, name="admin")
    srv.start()
    try:
        path = tmp_path / "syncd.toml"
        path.write_text(f'[daemon]\nstate_dir = "{tmp_path}"\n[admin]\nport = {srv.port}\n')
        assert cli.main(["status", "-c", str(path)]) == 0
    finally:
        srv.stop()
    out = capsys.readouterr().out
    assert "integration crm-mkt: preflight problems (a full sync is refused):" in out
    assert f"  {KEY}: section has no attribute 'companyname'; the account has: company [b]" \
        in out
    assert "  warning: integrations.crm-mkt.selections.VIP: no tag 'vip' (yet)" in out
    assert "integration other: preflight problems (a full sync is allowed):" in out
    assert "  connection error: connections.lime: token request failed with 401" in out
    assert "integration clean:" not in out
