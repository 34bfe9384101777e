"""The link running in the daemon: a thread of the ``ms365`` connection that, every
``poll_interval`` seconds (the fallback), at once when a change notification arrived, and
at once for the relationships a Tribe webhook named (the daemon routes the Tribe
connection's webhooks to the link: ``Ms365Connector.follows``/``peer_events``), gives new users
their initial sync (and a subscription), compares Tribe's relationships with each user's
Outlook (all of them in the first round, then those changed since: ``LastMutationDate``),
and runs a delta round per mailbox (the catch-up after any gap). Subscriptions are
renewed by an APScheduler job before they expire; lifecycle events are handled by the
:class:`~syncd_ms365.notifications.SubscriptionKeeper`.

The Tribe connection is the one ``tribe_connection`` names (its options come from the
daemon as the connector's ``peers``); the link's state is
``{state_dir}/ms365-{connection}.pairs.sqlite3``.
"""

from __future__ import annotations

import os
import threading
import time
from collections import defaultdict
from datetime import datetime, timedelta, timezone

import structlog
from apscheduler.schedulers.background import BackgroundScheduler

from syncd.plugin import SyncdError
from syncd_ms365.notifications import SubscriptionKeeper, _secret
from syncd_ms365.pairs import Pairs
from syncd_ms365.runner import LinkRunner

log = structlog.get_logger("syncd.ms365.service")

#: Seconds each incremental read of Tribe reaches back before the previous round began.
OVERLAP = 120
#: connection -> set when a valid notification arrived (by the receiver's parser)
WAKE: dict[str, threading.Event] = defaultdict(threading.Event)
#: connection -> lifecycle events (subscription id, event) the parser received
LIFECYCLE: dict[str, list[tuple[str, str]]] = defaultdict(list)


class LinkService:
    def __init__(self, connector):
        from syncd_tribe.client import TribeClient
        from syncd_tribe.options import resolve_options
        from syncd_tribe.people import TribePeople

        config = connector.config
        name = config["tribe_connection"]
        kind, options = connector.peers.get(name, (None, None))
        if kind != "tribe":
            raise SyncdError(f"connections.{connector.name}.tribe_connection: no tribe "
                             f"connection {name!r}")
        tribe = resolve_options(options)
        self.connector = connector
        self.client = TribeClient(tribe, name=f"{connector.name}-tribe")
        names = {k: config[k] for k in ("manager_nav", "owners_nav", "former_field",
                                        "function_field", "employee_email_field")}
        self.people = TribePeople(self.client, tribe["person_set"], tribe["contact_set"],
                                  names)
        directory = connector.state_dir or "."
        os.makedirs(directory, exist_ok=True)
        self.pairs = Pairs(os.path.join(directory, f"ms365-{connector.name}.pairs.sqlite3"))
        self.runner = LinkRunner(connector, self.people, self.pairs)
        self.scheduler = BackgroundScheduler(timezone="UTC")
        self.keeper: SubscriptionKeeper | None = None
        self.wake = WAKE[connector.name]
        self.interval = float(config["poll_interval"])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True,
                                        name=f"ms365-link-{connector.name}")
        self.rounds = 0
        #: where the next round's read of Tribe starts (None: read everything)
        self.tribe_cursor: str | None = None
        self.runner.wake = self.wake.set
        self._lock = threading.Lock()
        #: relationships Tribe's webhooks named since the last round
        self._pending: set[str] = set()
        #: when the next poll is due (time.monotonic)
        self._due = 0.0

    def start(self) -> None:
        self.scheduler.start()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.wake.set()
        self._thread.join(timeout=30)
        self.scheduler.shutdown(wait=False)
        self.pairs.close()
        self.client.close()

    def set_url(self, url: str) -> None:
        """The receiver's public URL for this connection (the daemon's ensure_webhook)."""
        state = _secret(self.connector.config.get("client_state"))
        if not state:
            log.warning("ms365.no_client_state", connection=self.connector.name,
                        detail="no change notifications: delta rounds only")
            return
        config = self.connector.config
        self.keeper = SubscriptionKeeper(
            self.connector.mailbox, self.pairs, url, state, int(config["subscription_minutes"]),
            int(config["renew_before"]), self.scheduler, on_gap=self.runner.notified)
        self.wake.set()

    def tribe_events(self, keys: list[str]) -> None:
        """Relationships Tribe's webhooks named (the connector's ``peer_events``, in the
        connection's actor): a ``webhook`` round sends them to Outlook at once."""
        with self._lock:
            self._pending.update(keys)
        self.wake.set()

    def poll_now(self) -> None:
        """The next round is a poll (Tribe since the cursor), now."""
        self._due = 0.0
        self.wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                keys, self._pending = sorted(self._pending), set()
            if time.monotonic() >= self._due or self.tribe_cursor is None:
                kind = "poll"  # the interval passed: Tribe since the cursor, the fallback
            else:
                kind = "webhook" if keys else "notification"
            try:
                self.round(kind, keys)
            except Exception as exc:  # the next round tries again
                log.error("ms365.round_failed", error=f"{type(exc).__name__}: {exc}")
            if kind == "poll":
                self._due = time.monotonic() + self.interval
            self.wake.wait(max(0.0, self._due - time.monotonic()))
            self.wake.clear()

    def round(self, kind: str = "poll", keys: list[str] | None = None) -> None:
        """``poll``: Tribe since the cursor; ``webhook``: the relationships Tribe's webhooks
        named (``keys``); ``notification`` (Graph's, a release): the mailboxes' delta only."""
        self.runner.sync_new_users()
        keeper = self.keeper
        if keeper is not None:
            for user in self.runner.users():
                if user in self.runner.problems:
                    continue
                try:
                    keeper.ensure(user)
                except Exception as exc:
                    log.warning("ms365.subscription_failed", user=user,
                                error=f"{type(exc).__name__}: {exc}")
            events, LIFECYCLE[self.connector.name][:] = \
                list(LIFECYCLE[self.connector.name]), []
            for sid, event in events:
                user = self.pairs.user_of_subscription(sid)
                if user is not None:
                    keeper.lifecycle(user, event)
        # Tribe: everything once (and after a restart), then what changed since the last
        # round began, reaching back OVERLAP seconds for clocks and late commits; then a
        # delta round per mailbox: one run per user
        if kind != "poll":
            self.runner.poll(None, kind, keys=keys)
            self.rounds += 1
            return
        started = datetime.now(timezone.utc)
        self.runner.poll(self.tribe_cursor, kind)
        self.tribe_cursor = (started - timedelta(seconds=OVERLAP)).strftime(
            "%Y-%m-%dT%H:%M:%SZ")
        self.rounds += 1
