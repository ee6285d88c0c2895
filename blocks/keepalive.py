"""One keep-alive HTTP/1.1 connection, as an httpx transport, its answers parsed by httptools.

Why not httpx's own transport: under it, httpcore and h11 read every answer in pure Python, and
that reading was most of what a vendor call cost leadflow's process (CPU per call against a
loopback server, 50 in flight: 0.85 ms through httpx's transport, 0.3 ms here). The
parsing is httptools (llhttp, the C parser uvicorn reads requests with); what is written here
is only the connection's life: connect, send, wait for the parsed answer, keep the socket for
the next request or close it.

A connection carries one request at a time: `blocks.http._Lanes` gives each request in flight a
connection of its own. Everything above the transport stays httpx's: `httpx.Request` builds the
request (Host, Content-Length, the encoded body), `httpx.Response` decodes gzip, and every
failure is raised as the httpx exception httpcore raises for it, which is what
`VendorHTTP._network_error` sorts into "never sent" and "may have been acted on":

- the connection could not be opened: `ConnectError`, or `ConnectTimeout`;
- the request could not be written: `WriteError`, or `WriteTimeout`;
- no answer, or part of one, before the peer closed: `RemoteProtocolError` (`ReadError` when
  the socket failed); an answer that is not HTTP: `RemoteProtocolError`;
- nothing read for the read timeout: `ReadTimeout`.

After any failure, and after a request is cancelled mid-way, the connection is closed: what is
still on its way from the peer belongs to a request nobody waits for.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import AsyncIterator, Iterator

import httptools
import httpx

#: an idle connection is not reused after this long: a server drops idle connections on its own
#: clock (uvicorn's default is 5 s), and a request sent as it does so is lost (httpx's default)
KEEPALIVE_EXPIRY = 5.0


class _Exchange(asyncio.Protocol):
    """The socket's side: it feeds what arrives to the parser and wakes the waiting request."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.lost = False
        self._writable: asyncio.Future[None] | None = None
        self._begin(None)

    def _begin(self, waiter: asyncio.Future[None] | None) -> None:
        self.waiter = waiter
        self.status = 0
        self.reason = b""
        #: (name, lower-case name, value), as `httpx.Headers` keeps them (see `headers_of`)
        self.headers: list[tuple[bytes, bytes, bytes]] = []
        self.body: list[bytes] = []
        self.received = False
        self.headers_done = False
        self.complete = False
        self.keep_alive = True
        self.head_only = False
        self.last_read = self._loop.time()

    def expect_answer(self, *, head_only: bool) -> asyncio.Future[None]:
        self._begin(self._loop.create_future())
        self.head_only = head_only
        return self.waiter  # type: ignore[return-value]

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.waiter is None or self.complete:
            # bytes nobody asked for: the connection cannot be trusted with another request
            self.close()
            return
        self.received = True
        self.last_read = self._loop.time()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(httpx.RemoteProtocolError("the server switched protocols unasked"))
        except httptools.HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError(f"the answer is not valid HTTP/1.1: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)  # a writer waiting to drain wakes to the failed answer
        if self.waiter is None or self.complete:
            return
        if self.headers_done and exc is None and self._body_runs_to_close():
            self._finish()
        elif exc is not None:
            self._fail(httpx.ReadError(str(exc) or type(exc).__name__))
        elif not self.received:
            self._fail(httpx.RemoteProtocolError("Server disconnected without sending a response."))
        else:
            self._fail(
                httpx.RemoteProtocolError(
                    "peer closed connection without sending complete message body"
                )
            )

    def pause_writing(self) -> None:
        if self._writable is None or self._writable.done():
            self._writable = self._loop.create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    # -- httptools callbacks

    def on_status(self, status: bytes) -> None:
        self.reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, name.lower(), value))

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        self.keep_alive = self._parser.should_keep_alive()
        self.headers_done = True
        if self.head_only and self.status >= 200:
            # a HEAD answer announces a body it never sends; the parser cannot know that, so
            # the answer ends here and so does the connection
            self.keep_alive = False
            self._finish()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.complete:
            return
        if 100 <= self.status < 200:  # an interim answer (100 Continue): the real one follows
            waiter, head_only = self.waiter, self.head_only
            self._begin(waiter)
            self.head_only = head_only
            return
        self._finish()

    # -- the request's side

    def _body_runs_to_close(self) -> bool:
        names = {lower for _, lower, _ in self.headers}
        return b"content-length" not in names and b"transfer-encoding" not in names

    def _finish(self) -> None:
        self.complete = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def _fail(self, exc: Exception) -> None:
        self.close()
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)

    async def writable(self, within: float | None) -> None:
        if self._writable is None or self._writable.done():
            return
        try:
            async with asyncio.timeout(within):
                await asyncio.shield(self._writable)
        except TimeoutError:
            raise httpx.WriteTimeout("the request could not be written in time") from None

    def close(self) -> None:
        self.lost = True
        if self.transport is not None:
            self.transport.close()


def headers_of(items: list[tuple[bytes, bytes, bytes]]) -> httpx.Headers:
    """`httpx.Headers` holding `items` (name, lower-case name, value: bytes, as httpx keeps
    them), without httpx checking and encoding every name and value again (about a tenth of the
    event loop thread's CPU in a profile of the journey benchmark, for headers that are bytes
    already: read off the wire, or written by leadflow). Should httpx keep its headers
    otherwise, they are built its own way; tests/blocks/test_keepalive.py holds both ways to the
    same headers."""
    if not _HEADERS_KEPT_AS_TRIPLES:
        return httpx.Headers([(name, value) for name, _, value in items])
    headers = httpx.Headers.__new__(httpx.Headers)
    headers._list = items
    headers._encoding = None
    return headers


def header_items(headers: httpx.Headers) -> list[tuple[bytes, bytes, bytes]]:
    """`headers` as `headers_of` takes them (a new list)."""
    if _HEADERS_KEPT_AS_TRIPLES:
        return list(headers._list)
    return [(name, name.lower(), value) for name, value in headers.raw]


#: whether httpx.Headers keeps (name, lower-case name, value) in `_list`, as httpx 0.28 does
_HEADERS_KEPT_AS_TRIPLES = vars(httpx.Headers([(b"A", b"b")])) == {
    "_list": [(b"A", b"a", b"b")],
    "_encoding": None,
}


class _WholeBody(httpx.SyncByteStream, httpx.AsyncByteStream):
    """An answer's body already read whole. Not an httpx.ByteStream, which httpx.Response
    would read through its decoders as it is made."""

    def __init__(self, content: bytes) -> None:
        self._content = content

    def __iter__(self) -> Iterator[bytes]:
        yield self._content

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self._content


class KeepAliveConnection(httpx.AsyncBaseTransport):
    """A single HTTP/1.1 connection, reused while the server keeps it alive (see the module)."""

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        keepalive_expiry: float = KEEPALIVE_EXPIRY,
    ) -> None:
        self._ssl_context = ssl_context
        self._keepalive_expiry = keepalive_expiry
        self._exchange: _Exchange | None = None
        self._origin: tuple[bytes, bytes, int] | None = None
        self._idle_since = 0.0
        self._busy = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._busy:
            raise RuntimeError("a KeepAliveConnection carries one request at a time")
        self._busy = True
        try:
            return await self._exchange_one(request)
        finally:
            self._busy = False
            self._idle_since = time.monotonic()

    async def _exchange_one(self, request: httpx.Request) -> httpx.Response:
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        exchange = await self._connection(request.url, timeouts.get("connect"))
        # a body given whole (every VendorHTTP request) is taken as it is; a streamed one is read
        body = b"".join(request.stream) if isinstance(request.stream, httpx.ByteStream) else None
        if body is None:
            body = await request.aread()
        answered = exchange.expect_answer(head_only=request.method == "HEAD")
        try:
            self._write(exchange, request, body)
            await exchange.writable(timeouts.get("write"))
            await self._answer(exchange, answered, timeouts.get("read"))
        except BaseException:
            exchange.waiter = None  # nobody waits for the rest of this answer
            exchange.close()
            raise
        if not exchange.keep_alive:
            exchange.close()
        exchange.waiter = None
        content = b"".join(exchange.body)
        response = httpx.Response(
            exchange.status,
            headers=headers_of(exchange.headers),
            stream=_WholeBody(content),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": exchange.reason},
        )
        if "content-encoding" in response.headers:
            response.read()  # gzip, deflate...: decoded now by httpx, without the async path
        else:
            # the answer is whole in memory and needs no decoding: it is the content. httpx's
            # read() would walk its decoder and chunker generators to join the same bytes
            # (a twentieth of a call's CPU); `_content` is where read() keeps them
            response._content = content
        return response

    async def _connection(self, url: httpx.URL, within: float | None) -> _Exchange:
        origin = (url.raw_scheme, url.raw_host, url.port or (443 if url.scheme == "https" else 80))
        exchange = self._exchange
        if exchange is not None and (
            exchange.lost
            or origin != self._origin
            or time.monotonic() - self._idle_since > self._keepalive_expiry
        ):
            exchange.close()
            exchange = None
        if exchange is None:
            exchange = self._exchange = await self._connect(url, origin, within)
            self._origin = origin
        return exchange

    async def _connect(
        self, url: httpx.URL, origin: tuple[bytes, bytes, int], within: float | None
    ) -> _Exchange:
        if url.scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"the URL's scheme must be http or https: {url}")
        loop = asyncio.get_running_loop()
        tls: ssl.SSLContext | None = None
        if url.scheme == "https":
            tls = self._ssl_context or httpx.create_ssl_context()
        try:
            async with asyncio.timeout(within):
                transport, exchange = await loop.create_connection(
                    lambda: _Exchange(loop),
                    url.host,
                    origin[2],
                    ssl=tls,
                    server_hostname=url.host if tls else None,
                )
        except TimeoutError:
            raise httpx.ConnectTimeout(f"no connection to {url.host} in {within}s") from None
        except OSError as exc:  # refused, unreachable, name not resolved, TLS refused
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from exc
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # head and body leave in one write, but a peer's delayed ACK must never hold one
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return exchange

    @staticmethod
    def _write(exchange: _Exchange, request: httpx.Request, body: bytes) -> None:
        if exchange.lost or exchange.transport is None or exchange.transport.is_closing():
            raise httpx.WriteError("the connection closed before the request was written")
        head = [request.method.encode("ascii"), b" ", request.url.raw_path, b" HTTP/1.1\r\n"]
        for name, value in request.headers.raw:
            head += (name, b": ", value, b"\r\n")
        head.append(b"\r\n")
        head.append(body)
        exchange.transport.write(b"".join(head))

    @staticmethod
    async def _answer(
        exchange: _Exchange, answered: asyncio.Future[None], quiet_limit: float | None
    ) -> None:
        """Wait for the whole answer; the read timeout counts from the last bytes received."""
        if quiet_limit is None:
            await answered
            return
        loop = asyncio.get_running_loop()
        timer: asyncio.TimerHandle | None = None

        def check() -> None:
            nonlocal timer
            quiet = loop.time() - exchange.last_read
            if answered.done():
                return
            if quiet >= quiet_limit:
                answered.set_exception(httpx.ReadTimeout(f"nothing read for {quiet_limit}s"))
            else:
                timer = loop.call_later(quiet_limit - quiet, check)

        exchange.last_read = loop.time()
        timer = loop.call_later(quiet_limit, check)
        try:
            await answered
        finally:
            timer.cancel()

    async def aclose(self) -> None:
        if self._exchange is not None:
            self._exchange.close()
            self._exchange = None

    @property
    def is_open(self) -> bool:
        """True while a connection is held for the next request."""
        return self._exchange is not None and not self._exchange.lost

    def __repr__(self) -> str:
        return f"<KeepAliveConnection open={self.is_open}>"
