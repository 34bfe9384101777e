"""The fuzz's sender, and what the fuzz sends to the Tribe connection: the real Tribe
parser behind the real receiver, with its signature computed here (base64 of the
HMAC-SHA512 digest of the raw body, keyed with the UTF-8 secret), not by the product."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from hypothesis import strategies as st
from reliability_support import TRIBE_SECRET

SENDERS = 4
TRIBE_HEADER = "X-Tribe-Signature"


@dataclass(frozen=True)
class Req:
    label: str
    expected: int
    method: str = "POST"
    path: str = "/webhooks/crm"
    headers: dict = field(default_factory=dict)
    body: bytes = b""
    chunked: bool = False

    def __repr__(self) -> str:  # keep falsifying examples readable
        return (f"Req({self.label}, {self.method} {self.path[:80]!r}, expect {self.expected}, "
                f"headers={ {k: v[:40] for k, v in self.headers.items()} }, "
                f"body[{len(self.body)}]={self.body[:60]!r}, chunked={self.chunked})")


def deeply_nested(max_body: int):
    """JSON nested deeper than Python's json module recurses (a RecursionError, not a
    ValueError, in a parser that does not expect it)."""
    return st.integers(1100, max_body - 40).flatmap(lambda n: st.sampled_from([
        b"[" * n, b'{"ids": ' + b"[" * n, b'{"payload": ' + b"[" * n,
        b'{"payload": {"entityId": ' + b"{\"a\": " * (n // 6),
    ]))


# -- Tribe ----------------------------------------------------------------------------------

def tribe_sign(body: bytes, secret: str = TRIBE_SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode("utf-8"), body, hashlib.sha512).digest()
                            ).decode("ascii")


def tribe_accepts(body: bytes) -> bool:
    """A model of what Tribe's parser takes once signed: a JSON envelope whose ``payload``
    is an object, or a list of objects, each naming an entityId or a relationshipId."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return False
    if not isinstance(data, dict) or "payload" not in data:
        return False
    payloads = data["payload"]
    payloads = [payloads] if isinstance(payloads, dict) else payloads
    return isinstance(payloads, list) and all(
        isinstance(p, dict) and (p.get("entityId") is not None
                                 or p.get("relationshipId") is not None) for p in payloads)


json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | \
    st.text(max_size=8)
json_values = st.recursive(json_scalars, lambda kids: st.lists(kids, max_size=3)
                           | st.dictionaries(st.text(max_size=4), kids, max_size=3),
                           max_leaves=4)
tribe_payloads = st.fixed_dictionaries(
    {"entityId": st.uuids().map(str)},
    optional={"type": st.sampled_from(["EntityUpdateMutation", "EntityCreationMutation",
                                       "EntityDeletionMutation"]),
              "entityType": st.sampled_from(["Relation.Person", "Relation.Organization",
                                             "Relationship.Person.Contact.Standard"])})
tribe_good = st.builds(lambda wid, p: json.dumps({"webhookId": wid, "payload": p}).encode(),
                       st.uuids().map(str), tribe_payloads | st.lists(tribe_payloads,
                                                                      min_size=1, max_size=3))


def tribe_spoiled(body: bytes) -> bytes:
    return body if not tribe_accepts(body) else b"\xff" + body


def tribe_malformed(max_body: int):
    return st.one_of(
        st.binary(max_size=200),
        json_values.map(lambda v: json.dumps(v).encode()),
        json_values.map(lambda v: json.dumps({"webhookId": "w", "payload": v}).encode()),
        json_values.map(lambda v: json.dumps({"payload": {"entityType": v}}).encode()),
        st.lists(json_values, min_size=1, max_size=3).map(
            lambda v: json.dumps({"payload": [{"entityId": "a"}, *v]}).encode()),
        tribe_good.map(lambda b: b[: max(1, len(b) // 2)]),
        tribe_good.map(lambda b: b.replace(b"{", b"[", 1)),
        tribe_good.map(lambda b: b.decode().encode("utf-16")[:-1]),
        deeply_nested(max_body),
    ).map(tribe_spoiled)


def tribe_requests(max_body: int):
    path = "/webhooks/tribe"

    @st.composite
    def unsigned(draw):
        body = draw(tribe_good | st.binary(max_size=200))
        headers = draw(st.sampled_from([{}, {TRIBE_HEADER: ""},
                                        {"X-Other-Signature": tribe_sign(body)}]))
        return Req("tribe unsigned", 401, path=path, headers=headers, body=body)

    @st.composite
    def wrongly_signed(draw):
        body = draw(tribe_good | st.binary(max_size=200))
        digest = hmac.new(TRIBE_SECRET.encode(), body, hashlib.sha512)
        how = draw(st.sampled_from(["hex", "sha256", "latin-1 secret", "other secret",
                                    "no padding", "urlsafe", "lower", "tampered"]))
        right = tribe_sign(body)
        if how == "hex":
            value = digest.hexdigest()
        elif how == "sha256":
            value = base64.b64encode(hmac.new(TRIBE_SECRET.encode(), body,
                                              hashlib.sha256).digest()).decode()
        elif how == "latin-1 secret":
            value = tribe_sign(body, TRIBE_SECRET.encode("latin-1").decode("utf-8", "replace"))
        elif how == "other secret":
            value = tribe_sign(body, draw(st.text(min_size=1, max_size=20)))
        elif how == "no padding":
            value = right.rstrip("=")
        elif how == "urlsafe":
            value = base64.urlsafe_b64encode(digest.digest()).decode()
        elif how == "lower":
            value = right.lower()
        else:
            body = body + draw(st.binary(min_size=1, max_size=8))
            value = right
        headers = {TRIBE_HEADER: value}
        if hmac.compare_digest(value.encode(), tribe_sign(body).encode()):
            headers = {}  # the variant happens to be the right signature: send none
        return Req(f"tribe wrongly signed ({how})", 401, path=path, headers=headers,
                   body=body)

    @st.composite
    def signed_malformed(draw):
        body = draw(tribe_malformed(max_body))
        return Req("tribe signed but malformed", 400, path=path,
                   headers={TRIBE_HEADER: tribe_sign(body)}, body=body)

    return st.one_of(unsigned(), wrongly_signed(), signed_malformed(), signed_malformed())


# -- sending ------------------------------------------------------------------------------------

class Sender:
    """A few threads, each with its own keep-alive connection, reused request after request.

    ``http.client`` rather than a ``requests.Session``: on this 2-core machine a pooled
    Session managed ~500-800 requests/s against the daemon, http.client 1,200-2,200, and the
    bytes on the wire are the same (HTTP/1.1, keep-alive, Content-Length or chunked bodies)."""

    def __init__(self, host: str, port: int, threads: int = SENDERS):
        self.host, self.port = host, int(port)
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="fuzz-sender")
        self.local = threading.local()
        self.lock = threading.Lock()
        self.sent = 0
        self.reconnects = 0
        self.by_status: dict[int | str, int] = {}
        self.conns: list[http.client.HTTPConnection] = []

    def _conn(self) -> http.client.HTTPConnection:
        c = getattr(self.local, "c", None)
        if c is None:
            c = self.local.c = http.client.HTTPConnection(self.host, self.port, timeout=30)
            with self.lock:
                self.conns.append(c)
        return c

    def _one(self, req: Req) -> int | str:
        c = self._conn()
        headers = dict(req.headers)
        body: bytes | list[bytes] | None = req.body
        if req.chunked:
            body = [req.body[i:i + 8192] for i in range(0, len(req.body), 8192)]
        elif req.method in ("POST", "PUT", "PATCH") or req.body:
            headers["Content-Length"] = str(len(req.body))
        try:
            c.request(req.method, req.path, body=body or None, headers=headers,
                      encode_chunked=req.chunked)
            resp = c.getresponse()
            resp.read()
            result: int | str = resp.status
            if req.method == "HEAD":
                # a HEAD answer with a body would poison this keep-alive connection for every
                # later request: test_head_is_answered_without_a_body tells that failure apart
                c.close()
        except (OSError, http.client.HTTPException) as exc:
            result = type(exc).__name__
            c.close()
            with self.lock:
                self.reconnects += 1
        with self.lock:
            self.sent += 1
            self.by_status[result] = self.by_status.get(result, 0) + 1
        return result

    def send(self, batch: list[Req]) -> list[int | str]:
        return list(self.pool.map(self._one, batch))

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        for c in self.conns:
            c.close()


