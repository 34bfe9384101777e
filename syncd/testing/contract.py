"""The contract kit for connector authors: one contract test class per capability.

A connector's test module subclasses :class:`ConnectorContract` and the contract class of
each capability it declares, and gives a ``harness`` fixture::

    from syncd.testing import ConnectorContract, RecordReaderContract, Harness

    class MyHarness(Harness): ...          # arrange and read the emulator's data

    class TestMyCrm(ConnectorContract, RecordReaderContract):
        @pytest.fixture
        def harness(self, my_emulator):
            ...
            yield MyHarness(connector, my_emulator, secrets=("s3cret",))

    def test_contracts_cover_every_capability():
        assert_contracts_cover(MyCrmConnector, [TestMyCrm])

``docs/plugins.md`` says what each contract checks and why.
"""

from __future__ import annotations

from collections.abc import Iterable

from syncd.connectors.capabilities import Capability
from syncd.connectors.connector import Connector
from syncd.testing.contract_destination import (
    BulkWriterContract,
    ConsentChangeReaderContract,
    ProfileDeleterContract,
    ProfileReaderContract,
    ProfileWriterContract,
    SchemaCheckerContract,
)
from syncd.testing.contract_engagement import (
    EngagementReaderContract,
    EngagementWriterContract,
    TaskCreatorContract,
)
from syncd.testing.contract_source import (
    ConnectorContract,
    ConsentWriterContract,
    DirectReaderContract,
    GroupReaderContract,
    RecordReaderContract,
    WebhookSourceContract,
)
from syncd.testing.harness import Harness

__all__ = [
    "CONTRACTS", "Harness", "ConnectorContract", "RecordReaderContract",
    "WebhookSourceContract", "ProfileWriterContract", "ProfileDeleterContract",
    "ConsentChangeReaderContract", "ConsentWriterContract", "GroupReaderContract",
    "BulkWriterContract", "DirectReaderContract", "SchemaCheckerContract",
    "EngagementReaderContract", "EngagementWriterContract", "TaskCreatorContract",
    "ProfileReaderContract", "assert_contracts_cover", "missing_contracts",
]

#: The contract class of each capability (a meta-test checks that none is missing).
CONTRACTS: dict[Capability, type] = {
    Capability.READ_RECORDS: RecordReaderContract,
    Capability.PARSE_WEBHOOKS: WebhookSourceContract,
    Capability.WRITE_PROFILES: ProfileWriterContract,
    Capability.DELETE_PROFILES: ProfileDeleterContract,
    Capability.READ_CONSENT_CHANGES: ConsentChangeReaderContract,
    Capability.WRITE_CONSENTS: ConsentWriterContract,
    Capability.READ_GROUPS: GroupReaderContract,
    Capability.BULK_WRITE: BulkWriterContract,
    Capability.READ_RECORD: DirectReaderContract,
    Capability.CHECK_SCHEMA: SchemaCheckerContract,
    Capability.READ_RESPONSES: EngagementReaderContract,
    Capability.WRITE_RESPONSES: EngagementWriterContract,
    Capability.CREATE_TASKS: TaskCreatorContract,
    Capability.READ_PROFILES: ProfileReaderContract,
}


def missing_contracts(capabilities: Iterable[str], contracts: dict | None = None) -> list[str]:
    """The capabilities that have no contract class."""
    contracts = CONTRACTS if contracts is None else contracts
    return sorted(str(c) for c in capabilities if c not in contracts)


def assert_contracts_cover(connector: type[Connector], test_classes: Iterable[type]) -> None:
    """Fail unless ``test_classes`` subclass :class:`ConnectorContract` and the contract of
    every capability ``connector`` declares."""
    classes = list(test_classes)
    wanted = [ConnectorContract] + [CONTRACTS[Capability(c)] for c in connector.capabilities]
    missing = [w.__name__ for w in wanted if not any(issubclass(t, w) for t in classes)]
    assert not missing, f"{connector.__name__}: no test runs {', '.join(sorted(missing))}"
