"""The ``ms365`` connector: Outlook address books through Microsoft Graph, one mailbox per
linked user (see :mod:`.auth` for linking and tokens, :mod:`.graph` for the requests).

The connector keeps no contact data itself: the two-way link (:mod:`.link`) asks it for a
user's contacts, writes them and reads their changes. A user whose consent is missing,
expired or revoked raises :class:`~syncd_ms365.auth.ConsentRequired` for that user only; it
is shown in ``syncd status`` (the connection's stats) and logged, and the others go on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from syncd.plugin import Capability, Connector, Event
from syncd_ms365.auth import Accounts
from syncd_ms365.graph import GraphClient
from syncd_ms365.mailbox import Mailbox
from syncd_ms365.options import OPTIONS

if TYPE_CHECKING:
    from syncd_ms365.service import LinkService


class Ms365Connector(Connector):
    kind: ClassVar[str] = "ms365"
    description = "Microsoft 365: Outlook contacts of linked users through Microsoft Graph"
    #: Graph's change notifications reach the receiver (:mod:`.notifications`).
    capabilities = frozenset({Capability.PARSE_WEBHOOKS})
    options = OPTIONS
    emulator = "syncd_ms365.emulator_graph:GraphEmulator"

    def __init__(self, name: str, config: Mapping[str, Any]):
        super().__init__(name, config)
        self.accounts: Accounts | None = None
        self.graph: GraphClient | None = None
        self.mailbox: Mailbox | None = None
        #: the Outlook link, when ``tribe_connection`` names one (made on start)
        self.service: LinkService | None = None

    def start(self) -> None:
        self.accounts = Accounts(self.name, self.config, self.state_dir)
        self.graph = GraphClient(self.config, self._token,
                                 application=self.config.get("flow") == "application")
        self.mailbox = Mailbox(self.graph, self.config["extended_property"])
        self.service = None
        if self.config.get("tribe_connection"):
            from syncd_ms365.service import LinkService
            self.service = LinkService(self)
            self.service.start()

    def stop(self) -> None:
        if self.service is not None:
            self.service.stop()
        if self.graph is not None:
            self.graph.session.close()

    def ensure_webhook(self, url: str) -> str | None:
        """The receiver's URL: each linked mailbox gets a change-notification
        subscription to it (with ``client_state``)."""
        if self.service is not None:
            self.service.set_url(url)
        return None

    @classmethod
    def follows(cls, name: str, config: Mapping[str, Any]) -> tuple[str, ...]:
        """The Tribe connection the link follows: its webhooks reach the link at once."""
        tribe = config.get("tribe_connection")
        return (tribe,) if tribe else ()

    def peer_events(self, connection: str, events: Sequence[Event]) -> None:
        """Tribe's webhook events: the relationships they name go to Outlook in a round of
        their own, within seconds (the poll stays the fallback)."""
        if self.service is not None and connection == self.config.get("tribe_connection"):
            self.service.tribe_events([e.record_id for e in events])

    def _token(self, user: str, force_refresh: bool = False) -> str:
        assert self.accounts is not None
        try:
            return self.accounts.token(user, force_refresh=force_refresh)
        except Exception as exc:
            self.log.warning("ms365.consent_required", user=user,
                             reason=getattr(exc, "reason", type(exc).__name__))
            raise

    @classmethod
    def webhook_parser(cls, name: str, config: Mapping[str, Any]):
        from syncd_ms365.notifications import parser
        return parser(name, config)

    @classmethod
    def webhook_handshake(cls, name: str, config: Mapping[str, Any]):
        from syncd_ms365.notifications import handshake
        return handshake(name, config)

    @classmethod
    def validate(cls, name: str, config: Mapping[str, Any]) -> list[str]:
        problems = []
        flow = config.get("flow")
        if flow == "application" and config.get("client_secret") is None:
            problems.append("client_secret: flow = \"application\" needs the app's secret "
                            "(fix: set client_secret, or use flow = \"device_code\")")
        if flow == "application" and not config.get("allowed_users"):
            problems.append("allowed_users: flow = \"application\" syncs only the users "
                            "listed (fix: list the users' e-mail addresses)")
        if flow == "auth_code" and not config.get("redirect_uri"):
            problems.append("redirect_uri: flow = \"auth_code\" needs the redirect URL "
                            "registered for the app (fix: set redirect_uri)")
        if not str(config.get("authority", "")).startswith("https://"):
            problems.append("authority: must be an https:// URL (MSAL refuses others)")
        return problems

    def users(self) -> dict[str, dict[str, Any]]:
        assert self.accounts is not None
        self.accounts.reload()
        return self.accounts.summary()

    def check(self) -> dict[str, Any]:
        users = self.users()
        return {"linked_users": sum(1 for u in users.values() if u["state"] == "linked"),
                "consent_required": sorted(u for u, e in users.items()
                                           if e["state"] != "linked")}

    def stats(self) -> dict[str, Any]:
        """``users`` (state per linked user) and ``attention``: the lines ``syncd status``
        prints, one per user who must link again."""
        users = self.users() if self.accounts else {}
        out: dict[str, Any] = {"users": users, "attention": [
            f"{u} {e['state']}: {e.get('reason') or ''} (fix: syncd ms365 authorize "
            f"{self.name} --user {u})" for u, e in users.items() if e["state"] != "linked"]}
        if self.graph is not None:
            out.update(self.graph.counts)
        if self.service is not None:
            link = self.service.runner.status()
            out["link"] = link
            for user, entry in link.items():
                if entry.get("problem") and entry.get("state") == "linked":
                    out["attention"].append(f"{user}: {entry['problem']}")
                for held in entry.get("held") or []:
                    out["attention"].append(f"{user}: held {held['key']}: {held['reason']}")
        return out

    @classmethod
    def sandbox_companion(cls, sources: dict[str, tuple[Any, str]], tmp: str):
        """The sandbox's Outlook link next to its Tribe source (:mod:`.sandbox`)."""
        from syncd_ms365.sandbox import companion
        return companion(sources, tmp)

    @classmethod
    def sandbox_config(cls, emulator: Any) -> dict[str, Any]:
        identity = emulator.identity
        return {"kind": cls.kind, "authority": identity.authority,
                "client_id": emulator.sandbox_client_id, "ca_bundle": identity.ca_bundle,
                "graph_url": f"{emulator.url}/v1.0", "max_attempts": 8}
