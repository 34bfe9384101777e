"""The Notebook connector against its emulator, through syncd's contract kit."""

from __future__ import annotations

import pytest
from syncd_example.connector import NotebookConnector
from syncd_example.emulator import NotebookEmulator

from syncd.plugin import Secret
from syncd.testing import (
    ConnectorContract,
    DirectReaderContract,
    Harness,
    RecordReaderContract,
    WebhookSourceContract,
    assert_contracts_cover,
)


class NotebookHarness(Harness):
    page_size = 4

    def source_ids(self) -> list[str]:
        return sorted(self.emulator.contacts)

    def delete_record(self, record_id: str) -> None:
        with self.emulator.lock:
            del self.emulator.contacts[record_id]

    def missing_id(self) -> str:
        return "nb-missing"

    def webhook(self, record_id: str) -> tuple[dict[str, str], bytes]:
        return self.emulator.delivery(record_id)


@pytest.fixture(params=[0, 3], ids=["uncapped", "page_cap=3"])
def emulator(request):
    with NotebookEmulator(page_cap=request.param) as emu:
        emu.seed(11)
        yield emu


class TestNotebookContract(ConnectorContract, RecordReaderContract, WebhookSourceContract,
                           DirectReaderContract):
    @pytest.fixture
    def harness(self, emulator):
        config = {**NotebookConnector.sandbox_config(emulator), "backoff": 0.02}
        config["api_key"] = Secret(config["api_key"])
        config["webhook_secret"] = Secret(config["webhook_secret"])
        connector = NotebookConnector("notebook", config)
        connector.start()
        yield NotebookHarness(connector, emulator,
                              secrets=(emulator.api_key, emulator.webhook_secret))
        connector.stop()


def test_the_contracts_cover_every_capability():
    assert_contracts_cover(NotebookConnector, [TestNotebookContract])
