"""Fault injection (placeholder interface; the sandbox-core work replaces the body)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request


class FaultInjector:
    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def dependency(self, vendor: str) -> Callable[[Request], Awaitable[None]]:
        async def inject(request: Request) -> None:
            return None

        return inject
