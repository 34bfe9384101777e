"""The Lime emulator's webhook sender: :class:`syncd.plugin.WebhookSender` (one background
thread, a queue, bounded retries) with Lime's subscriptions and signature.

Deliveries leave in the order the changes were made, to the subscription's ``target_url``,
each signed with its subscription's secret when it has one (``X-Lime-Signature:
sha256=<hex>``, apis.md 2.3). A non-2xx answer or a connection error is retried ``attempts``
times in all with doubling back-off (Lime's retry policy is a GAP); then the delivery counts
as failed.
"""

from __future__ import annotations

from typing import Any

from syncd.plugin import WebhookDelivery, WebhookSender
from syncd_lime.webhooks import HEADER, sign


class Sender(WebhookSender):
    def __init__(self, attempts: int = 5, backoff: float = 0.2, timeout: float = 5.0):
        super().__init__(attempts, backoff, timeout, thread_name="lime-webhooks")

    def address(self, target: dict[str, Any], body: bytes) -> WebhookDelivery:
        """``target``: a subscription (``id``, ``target_url``, ``secret`` or None)."""
        headers = {HEADER: sign(target["secret"], body)} if target.get("secret") else {}
        return WebhookDelivery(target["target_url"], headers, {"subscription": target["id"]})
