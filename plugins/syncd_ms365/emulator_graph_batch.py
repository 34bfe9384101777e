"""``POST /v1.0/$batch`` of the Graph emulator (apis.md 4.6): at most 20 requests with unique
ids, ``dependsOn`` (a request whose dependency failed answers 424), each request answered
with its own status, headers and body, a 429 with its own ``Retry-After``. Graph runs the
requests without ``dependsOn`` in parallel, at most the mailbox's free concurrency slots at
once: the others of that wave are answered 429."""

from __future__ import annotations

import io
import json
from typing import Any

from syncd.plugin import HTTPError, Request
from syncd_ms365.emulator_graph_store import graph_error


def run_batch(self, request: Request):
    principal = self._auth(request)
    body = request.json()
    items = body.get("requests") if isinstance(body, dict) else None
    if not isinstance(items, list) or not items:
        raise graph_error(400, "BadRequest", "The batch needs a 'requests' array.")
    if len(items) > 20:
        raise graph_error(400, "BadRequest", "A batch holds at most 20 requests.")
    ids = [str(i.get("id")) for i in items]
    if len(set(ids)) != len(ids) or any(not i.get("url") for i in items):
        raise graph_error(400, "BadRequest", "Batch request ids must be unique, each "
                          "request needs an id, a method and a url.")
    checked: set[str] = set()
    for item in items:  # a request sent before a Retry-After of its mailbox ran out
        target = str(item.get("url", "")).lstrip("/").split("/")
        uid = target[1] if target[0] == "users" and len(target) > 1 else None
        if target[0] in ("me", "users"):
            try:
                oid = self._resolve(principal, uid)
            except HTTPError:
                continue
            if oid not in checked:
                checked.add(oid)
                self.check_retry_after(request, scope=oid)
    status: dict[str, int] = {}
    responses = []
    parallel = 0
    answer: tuple[int, object, dict[str, str]]  # status, JSON body, headers
    for item in items:
        rid, deps = str(item["id"]), [str(d) for d in item.get("dependsOn") or []]
        if any(d not in status for d in deps):
            raise graph_error(400, "BadRequest", "dependsOn names a later or unknown id.")
        if any(status[d] >= 400 for d in deps):
            answer = (424, graph_error(424, "FailedDependency", "A dependency failed.")
                      .body, {})
        else:
            if not deps:
                parallel += 1
            answer = _sub(self, request, principal, item, parallel if not deps else 0)
        status[rid] = answer[0]
        entry = {"id": rid, "status": answer[0], "headers": answer[2]}
        if answer[1] is not None:
            entry["body"] = answer[1]
        responses.append(entry)
    return {"responses": responses}

def _sub(self, batch: Request, principal, item: dict[str, Any], wave: int):
    url = "/v1.0/" + str(item["url"]).lstrip("/")
    path, _, query = url.partition("?")
    data = item.get("body")
    raw = b"" if data is None else json.dumps(data).encode()
    environ: dict[str, Any] = {"REQUEST_METHOD": str(item.get("method", "GET")).upper(),
               "PATH_INFO": path, "QUERY_STRING": query, "CONTENT_LENGTH": str(len(raw)),
               "wsgi.input": io.BytesIO(raw),
               "HTTP_AUTHORIZATION": batch.header("Authorization") or ""}
    for key, value in (item.get("headers") or {}).items():
        if key.lower() == "content-type":
            environ["CONTENT_TYPE"] = value
        else:
            environ["HTTP_" + key.upper().replace("-", "_")] = value
    sub = Request(environ)
    # the emulator tags a request with its caller; Request declares no such field
    sub.principal = principal  # type: ignore[attr-defined]
    try:
        if data is not None and not (environ.get("CONTENT_TYPE") or "").startswith(
                "application/json"):
            raise graph_error(400, "BadRequest", "A batch request with a body needs a "
                              "Content-Type header.")
        handler, params = self.router.match(sub.method, path)
        sub.params = params
        if (wave and "uid" in params) or (wave and path.startswith("/v1.0/me/")):
            oid = self._mailbox(sub)
            with self._glock:
                free = self.mailbox_concurrency - self._inflight.get(oid, 0)
            if wave > free:
                raise self.throttle(sub, self.throttle_retry_after, scope=oid)
        result = handler(sub)
        if isinstance(result, tuple):
            return result[0], result[1], {"Content-Type": "application/json"}
        return 200, result, {"Content-Type": "application/json"}
    except HTTPError as exc:
        return exc.status, exc.body, dict(exc.headers)
