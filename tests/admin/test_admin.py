"""The admin endpoint over real HTTP: token auth, delegation to the control, error mapping,
the token file and the CLI's client."""

from __future__ import annotations

import os
import socket
import stat

import pytest
import requests

from syncd.app.admin import AdminApp, AdminClient, ensure_token
from syncd.exceptions import AdminError, NeedsConfirmation, SyncdError
from syncd.web.wsgi import ServerThread

TOKEN = "tok-0123456789abcdef"


class FakeControl:
    """Records each call; ``raises[method]`` makes that method raise."""

    def __init__(self):
        self.calls: list[tuple] = []
        self.raises: dict[str, BaseException] = {}
        self.run_result: dict | None = {"id": 7, "status": "completed", "errors": [
            {"record_id": "r1", "reason": "invalid e-mail"}]}

    def _call(self, name, *args):
        self.calls.append((name, *args))
        if name in self.raises:
            raise self.raises[name]

    def status(self):
        self._call("status")
        return {"pid": 1, "integrations": {}}

    def start_sync(self, integration, confirm=False):
        self._call("start_sync", integration, confirm)
        return {"run_id": 5, "integration": integration}

    def cancel_sync(self, integration):
        self._call("cancel_sync", integration)
        return {"run_id": 5, "cancelling": True}

    def runs(self, integration=None, limit=20):
        self._call("runs", integration, limit)
        return [{"id": 5}]

    def run(self, run_id):
        self._call("run", run_id)
        return self.run_result

    def events(self, failed=True, integration=None):
        self._call("events", failed, integration)
        return [{"id": 1, "error": "boom"}]

    def retry_events(self, ids=None, integration=None):
        self._call("retry_events", ids, integration)
        return {"requeued": len(ids or [1, 2, 3])}

    def reload(self):
        self._call("reload")
        return {"ok": True, "changes": {}}


@pytest.fixture
def control():
    return FakeControl()


@pytest.fixture
def server(control):
    srv = ServerThread(AdminApp(control, TOKEN), "127.0.0.1", 0, threads=2, name="admin")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def client(server):
    return AdminClient("127.0.0.1", server.port, TOKEN, token_file="/state/admin.token")


def get(server, path, token=TOKEN, **kw):
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return requests.get(server.url + path, headers=headers, timeout=5, **kw)


def post(server, path, token=TOKEN, **kw):
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return requests.post(server.url + path, headers=headers, timeout=5, **kw)


# -- auth -----------------------------------------------------------------------------------

@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {TOKEN}", TOKEN,
                                    f"Bearer {TOKEN}x", "Bearer ", "Bearer tök"])
def test_every_route_needs_the_token(server, control, header):
    headers = {"Authorization": header} if header is not None else {}
    for method, path in [("GET", "/status"), ("POST", "/reload"), ("GET", "/runs/1"),
                         ("POST", "/integrations/a/sync"), ("GET", "/nowhere")]:
        resp = requests.request(method, server.url + path, headers=headers, timeout=5)
        assert resp.status_code == 401, (header, path)
        assert resp.headers["WWW-Authenticate"] == "Bearer"
    assert control.calls == []


def test_the_right_token_is_accepted(server, control):
    resp = get(server, "/status")
    assert resp.status_code == 200
    assert resp.json() == {"pid": 1, "integrations": {}}
    assert control.calls == [("status",)]


# -- delegation -----------------------------------------------------------------------------

def test_routes_delegate_to_the_control(server, control):
    assert post(server, "/integrations/crm2apsis/sync", json={"confirm": True}).json() == {
        "run_id": 5, "integration": "crm2apsis"}
    assert post(server, "/integrations/crm2apsis/sync").status_code == 200
    assert post(server, "/integrations/crm2apsis/cancel").json()["cancelling"] is True
    assert get(server, "/runs?integration=crm2apsis&limit=3").json() == [{"id": 5}]
    assert get(server, "/runs").status_code == 200
    assert get(server, "/runs/7").json()["errors"][0]["reason"] == "invalid e-mail"
    assert get(server, "/events?failed=1&integration=x").json() == [{"id": 1, "error": "boom"}]
    assert get(server, "/events?failed=0").status_code == 200
    assert post(server, "/events/retry", json={"ids": [1, 2]}).json() == {"requeued": 2}
    assert post(server, "/events/retry", json={}).json() == {"requeued": 3}
    assert post(server, "/events/retry", json={"integration": "x"}).status_code == 200
    assert post(server, "/reload").json() == {"ok": True, "changes": {}}
    assert control.calls == [
        ("start_sync", "crm2apsis", True),
        ("start_sync", "crm2apsis", False),
        ("cancel_sync", "crm2apsis"),
        ("runs", "crm2apsis", 3),
        ("runs", None, 20),
        ("run", 7),
        ("events", True, "x"),
        ("events", False, None),
        ("retry_events", [1, 2], None),
        ("retry_events", None, None),
        ("retry_events", None, "x"),
        ("reload",),
    ]


@pytest.mark.parametrize("exc, status, message", [
    (KeyError("no integration named 'x'"), 404, "no integration named 'x'"),
    (NeedsConfirmation("would unsubscribe 40% of profiles; run with --confirm"), 409,
     "would unsubscribe 40% of profiles; run with --confirm"),
    (ValueError("no full sync of x is running"), 400, "no full sync of x is running"),
    (SyncdError("integration x is restarting after a failure"), 400,
     "integration x is restarting after a failure"),
])
def test_control_errors_map_to_statuses(server, control, exc, status, message):
    control.raises["start_sync"] = exc
    resp = post(server, "/integrations/x/sync", json={"confirm": False})
    assert resp.status_code == status
    assert resp.json() == {"error": message}


def test_an_unexpected_error_is_500_with_a_generic_message(server, control):
    control.raises["reload"] = RuntimeError("password=hunter2 in a traceback")
    resp = post(server, "/reload")
    assert resp.status_code == 500
    assert "hunter2" not in resp.text
    assert resp.json() == {"error": "internal error in syncd; see its log"}


def test_a_missing_run_is_404(server, control):
    control.run_result = None
    resp = get(server, "/runs/99")
    assert resp.status_code == 404
    assert resp.json() == {"error": "no run #99"}


@pytest.mark.parametrize("method, path, body", [
    ("GET", "/runs?limit=many", None),
    ("GET", "/runs/abc", None),
    ("GET", "/events?failed=maybe", None),
    ("POST", "/integrations/x/sync", {"confirm": "yes"}),
    ("POST", "/integrations/x/sync", [1]),
    ("POST", "/events/retry", {"ids": ["1"]}),
    ("POST", "/events/retry", {"ids": 3}),
    ("POST", "/events/retry", {"integration": 3}),
])
def test_bad_input_is_400_and_never_reaches_the_control(server, control, method, path, body):
    resp = requests.request(method, server.url + path, json=body, timeout=5,
                            headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status_code == 400
    assert resp.json()["error"]
    assert control.calls == []


def test_a_body_that_is_not_json_is_400(server, control):
    resp = post(server, "/events/retry", data=b"{nope")
    assert resp.status_code == 400
    assert control.calls == []


def test_unknown_route_404_and_wrong_method_405(server):
    assert get(server, "/nowhere").status_code == 404
    assert get(server, "/reload").status_code == 405


# -- the token file -------------------------------------------------------------------------

def test_ensure_token_creates_a_private_file_once(tmp_path):
    path = tmp_path / "state" / "admin.token"
    token = ensure_token(str(path))
    assert len(token) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().strip() == token
    assert ensure_token(str(path)) == token
    assert ensure_token(str(tmp_path / "other.token")) != token


def test_ensure_token_is_0600_whatever_the_umask(tmp_path):
    old = os.umask(0)
    try:
        ensure_token(str(tmp_path / "admin.token"))
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "admin.token").stat().st_mode) == 0o600


def test_ensure_token_tightens_a_readable_file(tmp_path):
    path = tmp_path / "admin.token"
    path.write_text("given-token\n")
    path.chmod(0o644)
    assert ensure_token(str(path)) == "given-token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_ensure_token_fills_an_empty_file(tmp_path):
    path = tmp_path / "admin.token"
    path.write_text("")
    path.chmod(0o600)
    token = ensure_token(str(path))
    assert token and path.read_text().strip() == token


# -- the client -----------------------------------------------------------------------------

def test_client_methods_mirror_the_routes(client, control):
    assert client.status()["pid"] == 1
    assert client.start_sync("a", confirm=True) == {"run_id": 5, "integration": "a"}
    assert client.cancel_sync("a")["run_id"] == 5
    assert client.runs("a", 2) == [{"id": 5}]
    assert client.runs() == [{"id": 5}]
    assert client.run(7)["id"] == 7
    assert client.events(failed=True, integration="a") == [{"id": 1, "error": "boom"}]
    assert client.retry_events([4], None) == {"requeued": 1}
    assert client.retry_events(None, "a") == {"requeued": 3}
    assert client.reload()["ok"] is True
    assert control.calls == [
        ("status",), ("start_sync", "a", True), ("cancel_sync", "a"), ("runs", "a", 2),
        ("runs", None, 20), ("run", 7), ("events", True, "a"), ("retry_events", [4], None),
        ("retry_events", None, "a"), ("reload",)]


def test_client_when_the_daemon_is_not_running():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nobody listens there
    with pytest.raises(AdminError) as err:
        AdminClient("127.0.0.1", port, TOKEN).status()
    assert str(err.value) == (f"cannot reach the admin endpoint: is syncd running? it listens "
                              f"on 127.0.0.1:{port}")


def test_client_with_a_refused_token_names_the_file(server):
    client = AdminClient("127.0.0.1", server.port, "wrong", token_file="/var/lib/syncd/admin.token")
    with pytest.raises(AdminError) as err:
        client.status()
    assert "the admin token in /var/lib/syncd/admin.token was refused" in str(err.value)
    assert err.value.status == 401


@pytest.mark.parametrize("exc, expected", [
    (KeyError("no integration named 'x'"), "no integration named 'x'"),
    (NeedsConfirmation("run with --confirm"), "run with --confirm"),
    (ValueError("no full sync of x is running"), "no full sync of x is running"),
    (RuntimeError("boom"), "syncd failed: internal error in syncd; see its log"),
])
def test_client_passes_the_daemons_message_through(client, control, exc, expected):
    control.raises["start_sync"] = exc
    with pytest.raises(AdminError) as err:
        client.start_sync("x")
    assert str(err.value) == expected


def test_client_on_a_missing_run(client, control):
    control.run_result = None
    with pytest.raises(AdminError, match=r"no run #3"):
        client.run(3)


def test_a_token_with_a_line_break_never_reaches_the_cli_output(server):
    client = AdminClient("127.0.0.1", server.port, "admin-token\nsecret-tail")
    with pytest.raises(AdminError) as caught:
        client.status()
    assert str(caught.value).endswith(": InvalidHeader")
    assert "secret-tail" not in str(caught.value)
