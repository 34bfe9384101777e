"""A few lines of WSGI plumbing shared by the receiver, the admin endpoint and the emulators:
a request object, a router, JSON answers and a waitress server that runs in a thread."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

import waitress.server


class HTTPError(Exception):
    def __init__(self, status: int, body: Any = None, headers: dict[str, str] | None = None,
                 content_type: str = "application/json"):
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}
        self.content_type = content_type


class Request:
    """The parts of a WSGI environ a handler needs. The raw body is read once, bounded."""

    def __init__(self, environ: dict, max_body: int | None = None):
        self.environ = environ
        self.method = environ["REQUEST_METHOD"].upper()
        self.path = environ.get("PATH_INFO", "") or "/"
        self.query_string = environ.get("QUERY_STRING", "")
        self.max_body = max_body
        self._body: bytes | None = None
        self.params: dict[str, str] = {}

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(self.query_string, keep_blank_values=True)

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    @property
    def headers(self) -> dict[str, str]:
        out = {}
        for key, value in self.environ.items():
            if key.startswith("HTTP_"):
                out[key[5:].replace("_", "-").title()] = value
        if "CONTENT_TYPE" in self.environ:
            out["Content-Type"] = self.environ["CONTENT_TYPE"]
        return out

    def header(self, name: str, default: str | None = None) -> str | None:
        key = "HTTP_" + name.upper().replace("-", "_")
        if name.lower() == "content-type":
            key = "CONTENT_TYPE"
        return self.environ.get(key, default)

    @property
    def content_length(self) -> int | None:
        try:
            return int(self.environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return None

    @property
    def body(self) -> bytes:
        if self._body is None:
            length = self.content_length
            if length is None:
                raise HTTPError(400, {"error": "bad Content-Length"})
            if self.max_body is not None and length > self.max_body:
                raise HTTPError(413, {"error": f"body over {self.max_body} bytes"})
            stream = self.environ["wsgi.input"]
            self._body = stream.read(length) if length else b""
        return self._body

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            raise HTTPError(400, {"error": "body is not JSON"}) from None

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode("utf-8", "replace")).items()}


Handler = Callable[[Request], Any]


class Router:
    """Routes ``(method, pattern)`` to handlers. Patterns use ``{name}`` for a path segment."""

    def __init__(self):
        self.routes: list[tuple[str, re.Pattern, Handler]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        regex = "^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern) + "$"
        self.routes.append((method.upper(), re.compile(regex), handler))

    def route(self, method: str, pattern: str):
        def deco(fn):
            self.add(method, pattern, fn)
            return fn
        return deco

    def match(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        allowed = False
        for m, regex, handler in self.routes:
            found = regex.match(path)
            if found:
                if m == method or (m == "GET" and method == "HEAD"):
                    return handler, found.groupdict()
                allowed = True
        raise HTTPError(405 if allowed else 404, {"error": "method not allowed" if allowed
                                                  else f"no route for {path}"})


def respond(start_response, status: int, body: Any = None, headers: dict[str, str] | None = None,
            content_type: str = "application/json") -> Iterable[bytes]:
    if body is None:
        data = b""
    elif isinstance(body, bytes):
        data = body
    elif isinstance(body, str):
        data = body.encode()
    else:
        data = json.dumps(body, default=str).encode()
    out = [("Content-Length", str(len(data)))]
    if data:
        out.append(("Content-Type", content_type))
    out.extend((headers or {}).items())
    start_response(f"{status} {_REASONS.get(status, 'Status')}", out)
    return [data]


_REASONS = {
    200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 301: "Moved Permanently",
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 408: "Request Timeout", 409: "Conflict", 410: "Gone",
    412: "Precondition Failed", 413: "Payload Too Large", 415: "Unsupported Media Type",
    422: "Unprocessable Entity", 429: "Too Many Requests", 500: "Internal Server Error",
    502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
}


def _no_body_for_head(app):
    """Answer HEAD with the headers GET would have, and no body (RFC 9110): a body there
    would be read by a keep-alive client as the start of its next response."""

    def wrapped(environ, start_response):
        result = app(environ, start_response)
        if environ.get("REQUEST_METHOD") != "HEAD":
            return result
        close = getattr(result, "close", None)
        if close is not None:
            close()
        return []

    return wrapped


class ServerThread:
    """A waitress server running in a daemon thread. ``port=0`` picks a free port."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0, threads: int = 8,
                 name: str = "http", **options):
        options.setdefault("channel_timeout", 30)
        # waitress takes whole seconds (0 would spin select() and hold the GIL); stop()
        # wakes the loop through its trigger instead of waiting for the timeout
        options.setdefault("asyncore_loop_timeout", 1)
        options.setdefault("connection_limit", 1000)
        options.setdefault("backlog", 1024)
        options.setdefault("clear_untrusted_proxy_headers", True)
        self.server = waitress.server.create_server(
            _no_body_for_head(app), host=host, port=port, threads=threads, ident="syncd", **options
        )
        self.host = host
        self.port = self.server.effective_port
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _run(self) -> None:
        try:
            self.server.run()
        except (OSError, ValueError):  # the socket map was closed under us: we are stopping
            pass

    def start(self) -> ServerThread:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, let running requests finish (up to ``timeout``), then close."""
        server = self.server
        try:
            server.accepting = False
            server.del_channel()
            server.socket.close()
        except OSError:
            pass
        # Requests already read are answered (a draining receiver answers 503, so the
        # sender retries) and their answers flushed before the connections close.
        deadline = time.monotonic() + timeout
        dispatcher = server.task_dispatcher
        while time.monotonic() < deadline:
            with dispatcher.lock:
                busy = bool(dispatcher.queue) or dispatcher.active_count > 0
            unsent = any(getattr(ch, "total_outbufs_len", 0)
                         for ch in list(server._map.values()))
            if not busy and not unsent:
                break
            try:
                server.pull_trigger()  # let the loop write what the workers produced
            except (OSError, AttributeError):
                pass
            time.sleep(0.01)
        dispatcher.shutdown(cancel_pending=True, timeout=max(0.1, deadline - time.monotonic()))
        for channel in list(server._map.values()):
            try:
                channel.close()
            except OSError:
                pass
        server._map.clear()
        try:
            server.pull_trigger()  # wake select() so the loop sees the empty map at once
        except (OSError, AttributeError):
            pass
        self._thread.join(timeout)
