"""Bad input at the real receiver of a running daemon: at least 10,000 malformed, unsigned,
oversized, wrongly signed and misrouted webhooks over HTTP, to the memory connector's parser
and to Tribe's (fuzz_support.py). Every one is refused with the right 4xx by the parser
itself: no parser crashes into the receiver's catch-all (none counted as ``malformed``),
none is queued, the daemon stays up and its RSS grows by no more than a few MB."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import sqlite3
from urllib.parse import quote

import pytest
import requests
from fuzz_support import (
    TRIBE_HEADER,
    Req,
    Sender,
    deeply_nested,
    json_values,
    tribe_requests,
    tribe_sign,
)
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from reliability_support import (
    SECRET,
    proc_rss_kb,
    signed_body,
    spawn_daemon,
    wait_for,
)

from syncd.testing import daemon_processes, sign

MAX_BODY = 2048          # the fuzzed daemon's [receiver] max_body_bytes
WAITRESS_CAP = max(MAX_BODY * 2, MAX_BODY + 65536)  # what start_receiver gives waitress
TARGET = 10_000          # requests the fuzz must really send
BATCH = 100              # requests per hypothesis example
WARM_UP = 1_000          # requests sent before the first RSS reading
RSS_BOUND_KB = 4 * 1024  # a few MB: what a leak of ~400 bytes per request would pass


# -- a model of the memory connector's parser: what "malformed" means ---------------------------

def parses(body: bytes) -> bool:
    """Whether the memory connector's parser would accept ``body`` once signed."""
    try:
        data = json.loads(body)
        [str(i) for i in data["ids"]]
    except (ValueError, KeyError, TypeError, RecursionError):
        return False
    return True


def sig(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {"X-Memory-Signature": sign(secret, body)}


# -- strategies ---------------------------------------------------------------------------------

#: Bodies that look right: a real sender's JSON with record ids.
good_bodies = st.lists(st.text(alphabet="p0123456789", min_size=1, max_size=4),
                       min_size=1, max_size=5).map(lambda ids: json.dumps({"ids": ids}).encode())


def spoiled(body: bytes) -> bytes:
    """``body`` if the parser refuses it, else a variant that it refuses (not UTF-8)."""
    return body if not parses(body) else b"\xff" + body


#: Bodies the parser refuses even when correctly signed.
malformed_bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),                     # not {"ids": ...}
    st.sampled_from([None, True, 5, 1.5]).map(lambda v: json.dumps({"ids": v}).encode()),
    json_values.map(lambda v: json.dumps({"id": v}).encode()),
    good_bodies.map(lambda b: b[: max(1, len(b) // 2)]),                    # truncated
    good_bodies.map(lambda b: b.replace(b"{", b"[", 1)),                    # broken syntax
    good_bodies.map(lambda b: b.decode().encode("utf-16")[:-1]),            # odd-length UTF-16
    deeply_nested(MAX_BODY),
).map(spoiled)
any_bodies = good_bodies | st.binary(max_size=200)
header_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E),
                      max_size=80)


@st.composite
def unsigned(draw):
    body = draw(any_bodies)
    headers = draw(st.sampled_from([{}, {"X-Memory-Signature": ""},
                                    {"X-Other-Signature": sign(SECRET, body)}]))
    return Req("unsigned", 401, headers=headers, body=body)


@st.composite
def wrongly_signed(draw):
    body = draw(any_bodies)
    how = draw(st.sampled_from(["secret", "garbage", "upper", "prefixed", "other_body",
                                "tampered", "truncated_sig"]))
    if how == "secret":
        other = draw(st.text(min_size=1, max_size=30).filter(lambda s: s != SECRET))
        value = sign(other, body)
    elif how == "garbage":
        value = draw(header_text)
    elif how == "upper":
        value = sign(SECRET, body).upper()
    elif how == "prefixed":
        value = "sha256=" + sign(SECRET, body)
    elif how == "other_body":
        value = sign(SECRET, body + b" ")
    elif how == "tampered":
        value = sign(SECRET, body)
        body = body + draw(st.binary(min_size=1, max_size=8))
    else:
        value = sign(SECRET, body)[:-1]
    headers = {"X-Memory-Signature": value}
    if hmac.compare_digest(value.encode(), sign(SECRET, body).encode()):  # pragma: no cover
        headers = {}
    return Req(f"wrongly signed ({how})", 401, headers=headers, body=body)


@st.composite
def signed_malformed(draw):
    body = draw(malformed_bodies)
    return Req("signed but malformed", 400, headers=sig(body), body=body)


@st.composite
def oversized(draw):
    size = draw(st.integers(MAX_BODY + 1, WAITRESS_CAP - 1))
    chunk = draw(st.binary(min_size=1, max_size=16))
    body = (chunk * (size // len(chunk) + 1))[:size]
    if draw(st.booleans()):  # a valid body padded out: signed, parseable, and still too big
        body = json.dumps({"ids": ["p01"], "pad": "x" * size}).encode()
    signed = draw(st.booleans())
    return Req("oversized", 413, headers=sig(body) if signed else {}, body=body,
               chunked=draw(st.booleans()))


@st.composite
def unknown_connection(draw):
    name = draw(st.text(min_size=1, max_size=30).filter(lambda s: s not in ("crm", "mkt", "tribe")))
    body = draw(good_bodies)
    return Req("unknown connection", 404, path="/webhooks/" + quote(name, safe=""),
               headers=sig(body), body=body)


@st.composite
def no_secret_connection(draw):
    body = draw(good_bodies)  # `mkt` parses webhooks but has no webhook_secret
    return Req("connection without a secret", 401, path="/webhooks/mkt", headers=sig(body),
               body=body)


@st.composite
def wrong_method(draw):
    method = draw(st.sampled_from(["GET", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]))
    body = draw(good_bodies)
    path = draw(st.sampled_from(["/webhooks/crm", "/webhooks/mkt", "/webhooks/nope"]))
    return Req("wrong method", 405, method=method, path=path, headers=sig(body),
               body=b"" if method in ("GET", "HEAD") else body)


segment = st.text(alphabet="abcdefghijklmnopqrstuvwxyzCRM0123456789-_~.", min_size=0,
                  max_size=12).filter(lambda s: s not in (".", ".."))


@st.composite
def wrong_path(draw):
    parts = draw(st.lists(segment, min_size=1, max_size=4))
    path = "/" + "/".join(parts)
    method = draw(st.sampled_from(["POST", "GET"]))
    if path == "/healthz":
        expected = 405 if method == "POST" else 200
    elif path.startswith("/webhooks/") and "/" not in path[len("/webhooks/"):] and \
            len(path) > len("/webhooks/"):
        expected = 405 if method == "GET" else {"crm": 401, "mkt": 401, "tribe": 401}.get(parts[-1],
                                                                             404)
    else:
        expected = 404
    if expected == 200:
        path, expected = "/healthz/x", 404
    return Req("wrong path", expected, method=method, path=path,
               body=b"" if method == "GET" else b"{}")


bad_requests = st.one_of(unsigned(), wrongly_signed(), signed_malformed(), oversized(),
                         unknown_connection(), no_secret_connection(), wrong_method(),
                         wrong_path(), tribe_requests(MAX_BODY))


@pytest.fixture(scope="module")
def daemon_proc(tmp_path_factory):
    with daemon_processes() as make:
        d = spawn_daemon(make, tmp_path_factory.mktemp("fuzz"), max_body=MAX_BODY, threads=4,
                         tribe=True)
        yield d
        assert d.stop() == 0, d.log_tail()


def check_batch(batch: list[Req], results: list[int | str]) -> None:
    for req, got in zip(batch, results, strict=True):
        assert got == req.expected, f"{req!r} got {got}"


def count_rows(db_path: str, where: str = "1") -> int:
    conn = sqlite3.connect(db_path, timeout=10)
    try:
        return conn.execute(f"SELECT count(*) FROM inbox WHERE {where}").fetchone()[0]
    finally:
        conn.close()


@pytest.mark.slow  # the daemon as a process
def test_ten_thousand_bad_webhooks_are_refused_and_nothing_is_queued(daemon_proc):
    d = daemon_proc
    pid = d.proc.pid
    sender = Sender("127.0.0.1", d.receiver_port)
    rss: dict[str, int] = {}
    kinds: dict[str, int] = {}

    @settings(max_examples=TARGET // BATCH, deadline=None, database=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(st.lists(bad_requests, min_size=BATCH, max_size=BATCH))
    def fuzz(batch):
        check_batch(batch, sender.send(batch))
        for req in batch:
            kinds[req.label.split(" (")[0]] = kinds.get(req.label.split(" (")[0], 0) + 1
        if "before" not in rss and sender.sent >= WARM_UP:
            rss["before"] = proc_rss_kb(pid)

    try:
        while sender.sent < TARGET:  # hypothesis may end a round early
            fuzz()
    finally:
        sender.close()
    rss["after"] = proc_rss_kb(pid)

    assert sender.sent >= TARGET
    assert set(sender.by_status) <= {400, 401, 404, 405, 413}, sender.by_status
    for status in (400, 401, 404, 405, 413):  # every kind of refusal was exercised
        assert sender.by_status.get(status, 0) > 100, sender.by_status
    assert d.running(), d.log_tail()
    client = d.client
    stats = client.status()["webhooks"]
    assert stats["accepted"] == 0 and stats["events"] == 0, stats
    assert stats["received"] >= sum(n for s, n in sender.by_status.items() if s in (400, 401)), \
        stats
    assert count_rows(d.db_path) == 0
    for kind in ("tribe unsigned", "tribe wrongly signed", "tribe signed but malformed"):
        assert kinds.get(kind, 0) > 300, kinds  # the Tribe parser had its share
    # a parser that crashed (not a WebhookRejected) is counted as "malformed": none may be
    reasons = stats["reasons"]
    assert reasons.get("malformed", 0) == 0, reasons
    assert reasons.get("rejected_400", 0) == sender.by_status[400], (reasons, sender.by_status)
    growth = rss["after"] - rss["before"]
    print(f"\nRSS of the daemon: {rss['before']} kB after {WARM_UP} requests, "
          f"{rss['after']} kB after {sender.sent}: {growth:+d} kB")
    assert growth < RSS_BOUND_KB, f"the daemon's RSS grew by {growth} kB over {sender.sent} " \
                                  f"requests ({rss})"

    # still up, and a valid webhook is still stored and applied
    with requests.Session() as s:
        s.trust_env = False
        assert s.get(f"{d.url}/healthz", timeout=5).status_code == 200
        body, headers = signed_body(["p03"])
        resp = s.post(f"{d.url}/webhooks/crm", data=body, headers=headers, timeout=10)
        assert resp.status_code == 200 and resp.json() == {"accepted": 1}
        # and a Tribe delivery signed as Tribe signs is queued for the integration it feeds
        body = json.dumps({"webhookId": "w1", "payload": {
            "entityId": "0A1B", "type": "EntityUpdateMutation",
            "entityType": "Relation.Person"}}).encode()
        resp = s.post(f"{d.url}/webhooks/tribe", data=body, timeout=10,
                      headers={TRIBE_HEADER: tribe_sign(body)})
        assert resp.status_code == 200 and resp.json() == {"accepted": 1}
    assert wait_for(lambda: count_rows(d.db_path, "record_id='p03' AND status='done'") == 1)
    assert count_rows(d.db_path, "record_id='0a1b' AND integration='from_tribe'") == 1
    assert client.status()["webhooks"]["accepted"] == 2


# -- malformed HTTP that requests will not send ---------------------------------------------------

def raw_exchange(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        try:
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.slow  # the daemon as a process
def test_a_body_shorter_than_its_length_is_not_queued(daemon_proc):
    """The sender gives up half-way: waitress never calls the app; nothing is stored."""
    before = count_rows(daemon_proc.db_path)
    body, headers = signed_body(["p01"])
    answer = raw_exchange(daemon_proc.receiver_port, head(
        "/webhooks/crm", f"Content-Length: {len(body) + 100}\r\n"
        f"X-Memory-Signature: {headers['X-Memory-Signature']}\r\n", body))
    assert answer == b"" or 400 <= int(answer.split()[1]) < 500, answer[:100]
    assert count_rows(daemon_proc.db_path) == before


def head(path: str, extra: str, body: bytes = b"") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n").encode("latin-1") + body


RAW = {
    "negative length": head("/webhooks/crm", "Content-Length: -1\r\n"),
    "non-numeric length": head("/webhooks/crm", "Content-Length: abc\r\n"),
    "two lengths": head("/webhooks/crm", "Content-Length: 2\r\nContent-Length: 3\r\n", b"{}"),
    "length over the cap": head("/webhooks/crm", f"Content-Length: {WAITRESS_CAP * 10}\r\n",
                                b"{}"),
    "length over max_body": head("/webhooks/crm", f"Content-Length: {MAX_BODY + 1}\r\n",
                                 b"x" * (MAX_BODY + 1)),
    "bad chunking": head("/webhooks/crm", "Transfer-Encoding: chunked\r\n", b"zz\r\nabc\r\n"),
    "header without colon": head("/webhooks/crm", "X-Memory-Signature\r\n", b""),
    "garbage request line": b"\x00\x01\x02 / HTTP/1.1\r\n\r\n",
    "bad version": b"POST /webhooks/crm HTTP/9.9\r\nContent-Length: 0\r\n\r\n",
}


@pytest.mark.slow  # the daemon as a process
@pytest.mark.parametrize("case", sorted(RAW))
def test_malformed_http_is_refused_with_a_4xx(daemon_proc, case):
    before = count_rows(daemon_proc.db_path)
    answer = raw_exchange(daemon_proc.receiver_port, RAW[case])
    status_line = answer.split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.")
    status = int(status_line.split()[1])
    assert 400 <= status < 500, (case, status_line)
    assert count_rows(daemon_proc.db_path) == before
    assert count_rows(daemon_proc.db_path, "status='pending' AND connection='crm'") == 0
    assert requests.get(f"{daemon_proc.url}/healthz", timeout=5).status_code == 200


def test_the_signature_is_checked_over_the_raw_body():
    """The oracle the fuzz relies on: a test of the test."""
    body = b'{"ids": ["p01"]}'
    assert parses(body) and not parses(b'{"ids": 5}') and not parses(b"\xff")
    assert sig(body)["X-Memory-Signature"] == hmac.new(SECRET.encode(), body,
                                                       hashlib.sha256).hexdigest()


@pytest.mark.slow  # the daemon as a process
@pytest.mark.parametrize("path", ["/healthz", "/webhooks/crm"])
def test_head_is_answered_without_a_body(daemon_proc, path):
    """RFC 9110: no body after a HEAD answer; a keep-alive client would read it as the start
    of its next response (found by the fuzz; syncd/web/wsgi.py answers HEAD without a body since
    _no_body_for_head)."""
    answer = raw_exchange(daemon_proc.receiver_port,
                          f"HEAD {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                          .encode())
    header, _, rest = answer.partition(b"\r\n\r\n")
    assert header.startswith(b"HTTP/1.1 ")
    assert rest == b"", f"{len(rest)} bytes of body after a HEAD answer: {rest[:60]!r}"
