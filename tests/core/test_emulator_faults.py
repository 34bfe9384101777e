"""The emulators' "applied, then failed" faults (syncd.web.emulator, shared by every partner
emulator): the handler runs and commits, then the answer is lost: a 5xx instead of it, a hang
then 504, or a connection dropped mid-answer. Reads are never touched; counts are the
emulator's own."""

from __future__ import annotations

import pytest
import requests

from syncd.web.emulator import Emulator
from syncd.web.wsgi import Request, Router


class Items(Emulator):
    kind = "items"

    def setup_routes(self, router: Router) -> None:
        self.items: list[str] = []
        router.add("POST", "/items", self._add)
        router.add("GET", "/items", lambda r: {"items": list(self.items)})
        router.add("POST", "/other", lambda r: {"ok": True})

    def _add(self, request: Request):
        self.items.append(request.json()["name"])
        return 201, {"name": self.items[-1]}


@pytest.fixture
def emu():
    with Items() as e:
        yield e


def post(emu, name: str, path: str = "/items", timeout: float = 5.0) -> int | str:
    try:
        return requests.post(emu.url + path, json={"name": name}, timeout=timeout).status_code
    except requests.RequestException as exc:
        return type(exc).__name__


@pytest.mark.parametrize("status", [500, 502, 503])
def test_a_write_is_applied_then_answered_with_a_5xx(emu, status):
    emu.set_faults(fail_after_next=[status])
    assert requests.get(emu.url + "/items", timeout=5).status_code == 200  # reads pass
    assert post(emu, "a") == status
    assert emu.items == ["a"]  # applied all the same
    assert post(emu, "b") == 201  # one fault, then normal answers
    assert emu.stats()["applied_then_failed"] == 1
    assert emu.stats()["by_status"][str(status)] == 1


def test_a_dropped_connection_after_the_write(emu):
    emu.set_faults(fail_after_next=[0])
    assert post(emu, "a") in ("ChunkedEncodingError", "ConnectionError")
    assert emu.items == ["a"]
    assert emu.stats()["applied_then_failed"] == 1
    assert post(emu, "b") == 201


def test_a_hang_after_the_write_times_the_client_out(emu):
    emu.set_faults(fail_after_next=[504], hang_seconds=0.6)
    assert post(emu, "a", timeout=0.2) == "ReadTimeout"
    assert emu.items == ["a"]
    assert emu.stats()["applied_then_failed"] == 1


def test_only_writes_to_the_given_path_and_only_what_succeeded(emu):
    emu.set_faults(fail_after_next=[502], fail_after_path="/items")
    assert post(emu, "x", path="/other") == 200
    assert post(emu, "a") == 502
    emu.set_faults(fail_after_rate=1.0, fail_after_path="")
    assert requests.post(emu.url + "/items", data=b"not json", timeout=5).status_code >= 400
    assert post(emu, "b") in (500, 502, 503)
    assert emu.items == ["a", "b"]
    assert emu.stats()["applied_then_failed"] == 2


def test_set_through_the_control_api_and_reset(emu):
    answer = requests.post(emu.url + "/_emulator/faults", json={"fail_after_next": [502]},
                           timeout=5).json()
    assert answer["fail_after_next"] == [502]
    assert post(emu, "a") == 502
    emu.reset_stats()
    assert emu.stats()["applied_then_failed"] == 0
