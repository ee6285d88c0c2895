"""Webhook delivery (placeholder interface; the sandbox-core work replaces the body)."""

from __future__ import annotations

import httpx

from sandbox.faults import FaultInjector


class WebhookSender:
    def __init__(self, faults: FaultInjector) -> None:
        self.faults = faults

    def deliver(self, vendor: str, url: str, body: bytes, headers: dict[str, str]) -> None:
        httpx.post(url, content=body, headers=headers, timeout=10)
