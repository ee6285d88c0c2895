"""respx in front of leadflow's own HTTP connections (`blocks.keepalive.KeepAliveConnection`).

respx's default mocker patches httpcore, which leadflow's vendor clients no longer go through
(blocks/keepalive.py says why). This mocker patches the connection's `handle_async_request`
instead. The answer is httpx's own on both sides; the request is recorded as a copy, as
httpcore's mocker records one, since an auth flow changes the request it repeats (Pipedrive's
OAuth refresh sets a new token on the same object).
Routers use it with `respx.mock(using="keepalive")`; registering happens on import
(tests/conftest.py imports this module).
"""

from __future__ import annotations

from typing import Any, ClassVar

import httpx
from respx.mocks import AbstractRequestMocker


class KeepAliveMocker(AbstractRequestMocker):
    name = "keepalive"
    targets: ClassVar[list[str]] = ["blocks.keepalive.KeepAliveConnection"]
    target_methods: ClassVar[list[str]] = ["handle_async_request"]

    @classmethod
    def to_httpx_request(cls, **kwargs: Any) -> httpx.Request:
        request: httpx.Request = kwargs["request"]
        return httpx.Request(
            request.method,
            request.url,
            headers=request.headers.copy(),
            stream=request.stream,
            extensions=request.extensions,
        )

    @classmethod
    async def from_async_httpx_response(
        cls, httpx_response: httpx.Response, target: Any, **kwargs: Any
    ) -> httpx.Response:
        return httpx_response
