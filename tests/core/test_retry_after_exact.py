"""Retry-After judged by what the client knew: each attempt carries its id
(``X-Syncd-Request``) and the ids of the 429s whose hold it waited out (``X-Syncd-Held-By``,
read at the last check, in the session's adapter); the emulator counts a request naming a
429 whose Retry-After had not ended when it arrived, with no grace, and leaves a request that
names none (its 429 was still in flight to the client) alone whatever the delay. A request
without the header is still judged by time."""

import threading

import requests

from syncd.connectors.budgets import HELD_BY, REQUEST_ID, Holds
from syncd.connectors.httpclient import HttpClient, RateBudget
from syncd.web.emulator import Emulator


class Plain(Emulator):
    kind = "plain"

    def setup_routes(self, router):
        router.add("GET", "/thing", lambda r: {"ok": True})


def seen(emu):
    """Every request's headers as it arrived (X-Syncd-Request, X-Syncd-Held-By), status."""
    out = []
    emu.observers.append(lambda r, status: out.append(
        (r.header(REQUEST_ID), r.header(HELD_BY), status)))
    return out


def test_a_request_naming_a_429_it_knew_of_is_early_whatever_the_grace():
    with Plain() as emu:
        emu.retry_after_grace = 60.0  # a time-graced count would count nothing
        emu.set_faults(fail_next=[429], retry_after=30)
        url = f"{emu.url}/thing"
        assert requests.get(url, headers={REQUEST_ID: "t-1"}, timeout=5).status_code == 429
        # its sender had not recorded the 429 yet when it sent: in flight, whatever the time
        requests.get(url, headers={REQUEST_ID: "t-2", HELD_BY: "-"}, timeout=5)
        requests.get(url, headers={REQUEST_ID: "t-3", HELD_BY: "x-9"}, timeout=5)
        assert emu.stats()["retry_after_violations"] == 0
        # it had: early, with no grace
        requests.get(url, headers={REQUEST_ID: "t-4", HELD_BY: "x-9,t-1"}, timeout=5)
        assert emu.stats()["retry_after_violations"] == 1
        [(request_id, scope, early, how)] = emu.retry_after_log
        assert (request_id, scope, how) == ("t-4", "", "known") and 29 < early <= 30


def test_a_request_without_the_header_is_judged_by_time():
    with Plain() as emu:
        emu.retry_after_grace = 0.0
        emu.set_faults(fail_next=[429], retry_after=30)
        url = f"{emu.url}/thing"
        assert requests.get(url, timeout=5).status_code == 429
        requests.get(url, timeout=5)
        assert emu.stats()["retry_after_violations"] == 1
        assert emu.retry_after_log[0][3] == "time"


def test_the_client_names_the_429_whose_hold_it_waited_out():
    with Plain() as emu:
        log = seen(emu)
        client = HttpClient(emu.url, backoff=0.01)
        emu.set_faults(fail_next=[429], retry_after=0.2)
        assert client.get("/thing").json() == {"ok": True}  # retried after the hold
        (first, none, status), (second, known, ok) = log
        assert (none, status, ok) == ("-", 429, 200)
        assert known == first and second != first
        assert emu.stats()["retry_after_violations"] == 0


def test_a_client_that_ignores_retry_after_is_counted(monkeypatch):
    """The hold disabled (its check finds nothing to wait for, still naming what it knew):
    every request sent during the Retry-After is counted, with no grace."""
    monkeypatch.setattr(Holds, "_remaining", lambda self, scope: 0.0)
    with Plain() as emu:
        client = HttpClient(emu.url, backoff=0.01)
        emu.set_faults(fail_next=[429], retry_after=30)
        assert client.get("/thing", ok=(429,)).status_code == 429
        for _ in range(3):
            client.get("/thing")
        assert emu.stats()["retry_after_violations"] == 3
        assert {how for *_, how in emu.retry_after_log} == {"known"}


def test_a_hold_taken_while_a_request_is_prepared_holds_it():
    """The last check is in the adapter, after the budget, the token and the request's
    preparation: a 429 recorded between the client's earlier checks and the send holds the
    request, which then names it."""
    with Plain() as emu:
        log = seen(emu)
        holds = Holds()
        client = HttpClient(emu.url, holds=holds, budget=RateBudget(1000))
        prepared = threading.Event()
        original = client.session.prepare_request

        def prepare(request):
            holds.hold(0.3, by="other-1")  # another thread's 429 came back meanwhile
            prepared.set()
            return original(request)

        client.session.prepare_request = prepare
        client.get("/thing")
        assert prepared.is_set()
        [(_, known, status)] = log
        assert (known, status) == ("other-1", 200)
        assert holds.remaining() == 0  # it left once the hold had ended
