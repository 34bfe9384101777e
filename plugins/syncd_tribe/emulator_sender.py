"""The Tribe emulator's webhook sender: :class:`syncd.plugin.WebhookSender` (one background
thread, a queue, bounded retries) with Tribe's webhooks and signature.

Deliveries leave in the order the changes were made, to the webhook's ``url``, signed with
its secret in the emulator's ``signature_header`` (see :mod:`syncd_tribe.webhooks`), plus the
webhook's own ``headers``. A non-2xx answer or a connection error is retried ``attempts``
times in all, with doubling back-off from ``backoff`` seconds; then the delivery is counted as
failed. (Tribe's own retry policy is a GAP.)
"""

from __future__ import annotations

from typing import Any

from syncd.plugin import WebhookDelivery, WebhookSender
from syncd_tribe.webhooks import sign


class Sender(WebhookSender):
    def __init__(self, signature_header: str, attempts: int = 5, backoff: float = 0.2,
                 timeout: float = 5.0):
        super().__init__(attempts, backoff, timeout, thread_name="tribe-webhooks")
        self.signature_header = signature_header

    def address(self, target: dict[str, Any], body: bytes) -> WebhookDelivery:
        """``target``: a registered webhook (``id``, ``url``, ``secret``, ``headers``?)."""
        headers = {self.signature_header: sign(target["secret"], body),
                   **target.get("headers", {})}
        return WebhookDelivery(target["url"], headers, {"webhook": target["id"]})
