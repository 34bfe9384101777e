"""The admin endpoint the CLI talks to: a small JSON API on loopback, behind a bearer token.

The token lives in a file only the daemon's user can read (mode 0600, see
:func:`ensure_token`); the CLI reads the same file. The app only translates HTTP into calls
on an :class:`AdminControl` (the daemon) and its exceptions into statuses:

==============================  ======================================================
``KeyError``                    404 (no such integration / run)
``NeedsConfirmation``           409 (run again with ``--confirm``)
``ValueError``, ``SyncdError``  400
anything else                   500, logged, with a generic message
==============================  ======================================================
"""

from __future__ import annotations

import hmac
import os
import secrets
import stat
from typing import Any, Protocol

import requests
import structlog

from syncd.exceptions import AdminError, NeedsConfirmation, SyncdError
from syncd.web.wsgi import HTTPError, Request, Router, respond

log = structlog.get_logger("syncd.app.admin")

MAX_BODY = 65536


class AdminControl(Protocol):
    """What the admin endpoint asks of the daemon."""

    def status(self) -> dict[str, Any]: ...

    def start_sync(self, integration: str, confirm: bool = False, dry_run: bool = False,
                   plan: int | None = None) -> dict[str, Any]: ...

    def cancel_sync(self, integration: str) -> dict[str, Any]: ...

    def confirm(self, integration: str) -> dict[str, Any]: ...

    def runs(self, integration: str | None = None, limit: int = 20) -> list[dict[str, Any]]: ...

    def run(self, run_id: int) -> dict[str, Any] | None: ...

    def events(self, failed: bool = True, integration: str | None = None
               ) -> list[dict[str, Any]]: ...

    def retry_events(self, ids: list[int] | None = None,
                     integration: str | None = None) -> dict[str, Any]: ...

    def reload(self) -> dict[str, Any]: ...

    def import_overview(self, integration: str, overview: str) -> dict[str, Any]: ...

    def explain(self, integration: str, record: str) -> dict[str, Any]: ...

    def run_responses(self, integration: str) -> dict[str, Any]: ...


def ensure_token(path: str) -> str:
    """The admin token in ``path``; created (random, mode 0600) when missing or empty.
    A token file readable by group or others is tightened to 0600."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = stat.S_IMODE(os.stat(path).st_mode)
        if mode & 0o077:
            os.chmod(path, 0o600)
            log.warning("admin.token_permissions_tightened", path=path, was=oct(mode))
        with open(path, encoding="utf-8") as fh:
            token = fh.read().strip()
        if token:
            return token
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        os.fchmod(fh.fileno(), 0o600)
        fh.write(token + "\n")
    log.info("admin.token_created", path=path)
    return token


def _flag(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise HTTPError(400, {"error": f"expected a boolean (1 or 0), got {value!r}"})


def _int(value: str | None, what: str) -> int:
    if value is not None:
        try:
            return int(value)
        except ValueError:
            pass
    raise HTTPError(400, {"error": f"{what} must be a whole number, got {value!r}"})


def _object(request: Request) -> dict[str, Any]:
    body = request.json()
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise HTTPError(400, {"error": "the body must be a JSON object"})
    return body


class AdminApp:
    """The admin WSGI app. Every route needs ``Authorization: Bearer <token>``, except the
    paths of ``ops`` (``/metrics``, ``/healthz``, ``/readyz``: see :mod:`syncd.app.health`)."""

    def __init__(self, control: AdminControl, token: str, ops=None):
        self.control = control
        self.ops = ops
        self._token = token.encode()
        r = self.router = Router()
        r.add("GET", "/status", lambda q: control.status())
        r.add("POST", "/integrations/{name}/sync", self._sync)
        r.add("POST", "/integrations/{name}/confirm",
              lambda q: control.confirm(q.params["name"]))
        r.add("POST", "/integrations/{name}/cancel",
              lambda q: control.cancel_sync(q.params["name"]))
        r.add("GET", "/runs", lambda q: control.runs(
            q.arg("integration") or None, _int(q.arg("limit", "20"), "limit")))
        r.add("GET", "/runs/{id}", self._run)
        r.add("GET", "/events", lambda q: control.events(
            _flag(q.arg("failed"), True), q.arg("integration") or None))
        r.add("POST", "/events/retry", self._retry)
        r.add("POST", "/reload", lambda q: control.reload())
        r.add("GET", "/integrations/{name}/records/{record}/explain",
              lambda q: control.explain(q.params["name"], q.params["record"]))
        r.add("POST", "/integrations/{name}/responses/run",
              lambda q: control.run_responses(q.params["name"]))
        r.add("POST", "/integrations/{name}/overviews/{overview}/import",
              lambda q: control.import_overview(q.params["name"], q.params["overview"]))

    def __call__(self, environ: dict, start_response):
        request = Request(environ, max_body=MAX_BODY)
        if self.ops is not None and request.path in self.ops.PATHS:
            return self.ops(environ, start_response)
        headers: dict[str, str] = {}
        try:
            if not self._authorized(request):
                raise HTTPError(401, {"error": "missing or wrong admin token"},
                                {"WWW-Authenticate": "Bearer"})
            handler, params = self.router.match(request.method, request.path)
            request.params = params
            status, body = 200, handler(request)
        except HTTPError as exc:
            status, body, headers = exc.status, exc.body, exc.headers
        except KeyError as exc:
            status, body = 404, {"error": str(exc.args[0]) if exc.args else "not found"}
        except NeedsConfirmation as exc:
            status, body = 409, {"error": str(exc)}
        except (ValueError, SyncdError) as exc:
            status, body = 400, {"error": str(exc)}
        except Exception:
            log.exception("admin.error", method=request.method, path=request.path)
            status, body = 500, {"error": "internal error in syncd; see its log"}
        if status >= 400:
            log.info("admin.refused", method=request.method, path=request.path, status=status,
                     reason=body.get("error") if isinstance(body, dict) else None)
        return respond(start_response, status, body, headers)

    def _authorized(self, request: Request) -> bool:
        given = request.header("Authorization") or ""
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(token.strip().encode("utf-8", "surrogateescape"), self._token)

    def _sync(self, request: Request) -> dict[str, Any]:
        body = _object(request)
        confirm, dry_run, plan = (body.get("confirm", False), body.get("dry_run", False),
                                  body.get("plan"))
        if not isinstance(confirm, bool) or not isinstance(dry_run, bool):
            raise HTTPError(400, {"error": "confirm and dry_run must be true or false"})
        if plan is not None and (not isinstance(plan, int) or isinstance(plan, bool)):
            raise HTTPError(400, {"error": "plan must be a run id"})
        if dry_run or plan is not None:
            return self.control.start_sync(request.params["name"], confirm=confirm,
                                           dry_run=dry_run, plan=plan)
        return self.control.start_sync(request.params["name"], confirm=confirm)

    def _run(self, request: Request) -> dict[str, Any]:
        run_id = _int(request.params["id"], "run id")
        run = self.control.run(run_id)
        if run is None:
            raise KeyError(f"no run #{run_id}")
        return run

    def _retry(self, request: Request) -> dict[str, Any]:
        body = _object(request)
        ids = body.get("ids")
        if ids is not None and (not isinstance(ids, list) or not all(
                isinstance(i, int) and not isinstance(i, bool) for i in ids)):
            raise HTTPError(400, {"error": "ids must be a list of event ids"})
        integration = body.get("integration")
        if integration is not None and not isinstance(integration, str):
            raise HTTPError(400, {"error": "integration must be a name"})
        return self.control.retry_events(ids or None, integration or None)


class AdminClient:
    """The CLI's side: one method per route, parsed JSON back, :class:`AdminError` on any
    failure, with a message a person can act on."""

    def __init__(self, host: str, port: int, token: str, *, token_file: str | None = None,
                 timeout: float = 60.0):
        self.host = host
        self.port = port
        self.token_file = token_file
        self.timeout = timeout
        self.base = f"http://{host}:{port}"
        self.session = requests.Session()
        self.session.trust_env = False  # loopback: never through an HTTP proxy
        self.session.headers["Authorization"] = f"Bearer {token}"

    def _call(self, method: str, path: str, *, params: dict | None = None,
              json: Any = None, timeout: float | None = None) -> Any:
        try:
            resp = self.session.request(method, self.base + path, params=params, json=json,
                                        timeout=timeout or self.timeout)
        except requests.ConnectionError:
            raise AdminError(f"cannot reach the admin endpoint: is syncd running? it listens "
                             f"on {self.host}:{self.port}") from None
        except requests.Timeout:
            raise AdminError(f"syncd on {self.host}:{self.port} did not answer within "
                             f"{timeout or self.timeout:.0f} s") from None
        except requests.RequestException as exc:
            # the type only: the message may quote a header value (the admin token)
            raise AdminError(f"cannot talk to syncd on {self.host}:{self.port}: "
                             f"{type(exc).__name__}") from None
        try:
            data = resp.json()
        except ValueError:
            data = None
        if resp.status_code == 401:
            where = f"in {self.token_file} " if self.token_file else ""
            error = AdminError(f"the admin token {where}was refused by syncd on "
                               f"{self.host}:{self.port} (does this config belong to the "
                               f"running daemon?)")
        elif resp.status_code >= 400:
            message = data.get("error") if isinstance(data, dict) else None
            message = message or f"HTTP {resp.status_code}"
            error = AdminError(message if resp.status_code < 500 else f"syncd failed: {message}")
        elif data is None and resp.content:
            error = AdminError(f"syncd answered {method} {path} with something that is not JSON")
        else:
            return data
        error.status = resp.status_code
        raise error

    def status(self) -> dict[str, Any]:
        return self._call("GET", "/status")

    def start_sync(self, integration: str, confirm: bool = False, dry_run: bool = False,
                   plan: int | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"confirm": bool(confirm)}
        if dry_run:
            body["dry_run"] = True
        if plan is not None:
            body["plan"] = int(plan)
        return self._call("POST", f"/integrations/{_seg(integration)}/sync", json=body)

    def confirm(self, integration: str) -> dict[str, Any]:
        return self._call("POST", f"/integrations/{_seg(integration)}/confirm")

    def cancel_sync(self, integration: str) -> dict[str, Any]:
        return self._call("POST", f"/integrations/{_seg(integration)}/cancel")

    def runs(self, integration: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit}
        if integration:
            params["integration"] = integration
        return self._call("GET", "/runs", params=params)

    def run(self, run_id: int) -> dict[str, Any]:
        return self._call("GET", f"/runs/{int(run_id)}")

    def events(self, failed: bool = True, integration: str | None = None
               ) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"failed": "1" if failed else "0"}
        if integration:
            params["integration"] = integration
        return self._call("GET", "/events", params=params)

    def retry_events(self, ids: list[int] | None = None,
                     integration: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if ids:
            body["ids"] = list(ids)
        if integration:
            body["integration"] = integration
        return self._call("POST", "/events/retry", json=body)

    def reload(self) -> dict[str, Any]:
        return self._call("POST", "/reload", timeout=max(self.timeout, 180.0))

    def explain(self, integration: str, record: str) -> dict[str, Any]:
        return self._call("GET", f"/integrations/{_seg(integration)}/records/"
                                 f"{_seg(record)}/explain")

    def run_responses(self, integration: str) -> dict[str, Any]:
        return self._call("POST", f"/integrations/{_seg(integration)}/responses/run")

    def import_overview(self, integration: str, overview: str) -> dict[str, Any]:
        return self._call("POST", f"/integrations/{_seg(integration)}/overviews/"
                                  f"{_seg(overview)}/import")


def _seg(name: str) -> str:
    from urllib.parse import quote
    return quote(name, safe="")
