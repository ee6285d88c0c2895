"""leadflow's own HTTP/1.1 connection (blocks/keepalive.py): what it writes, how it reads every
shape of answer, when it keeps the socket, and which httpx error each failure becomes.

Each test talks to a scripted server on loopback: the server reads one request at a time and
answers it with the next step of its script (raw bytes, a close, or silence), recording the raw
requests and how many connections it accepted.
"""

from __future__ import annotations

import asyncio
import datetime
import gzip
import ipaddress
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from blocks.keepalive import KeepAliveConnection, header_items, headers_of

OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}'
CLOSE = "close"  # a step: close the connection without answering
SILENCE = "silence"  # a step: read the request and never answer
TIMEOUTS = {"connect": 2.0, "read": 2.0, "write": 2.0, "pool": 2.0}


@dataclass
class ScriptedServer:
    steps: list[bytes | str | tuple[bytes, ...]]
    requests: list[bytes] = field(default_factory=list)
    connections: int = 0
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while self.steps:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                self.requests.append(head + await reader.readexactly(length))
                step = self.steps.pop(0)
                if step == CLOSE:
                    break
                if step == SILENCE:
                    await asyncio.sleep(30)
                    break
                parts = step if isinstance(step, tuple) else (step,)
                for part in parts:  # parts of one answer arrive 50 ms apart
                    assert isinstance(part, bytes)
                    writer.write(part)
                    await writer.drain()
                    if len(parts) > 1:
                        await asyncio.sleep(0.05)
                if b"connection: close" in b"".join(parts).lower():
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., ScriptedServer]]:
    servers: list[asyncio.Server] = []

    async def serving(*steps: bytes | str | tuple[bytes, ...]) -> ScriptedServer:
        scripted = ScriptedServer(list(steps))
        server = await asyncio.start_server(scripted.handle, "127.0.0.1", 0)
        scripted.port = server.sockets[0].getsockname()[1]
        servers.append(server)
        return scripted

    yield serving  # type: ignore[misc]
    for server in servers:
        server.close()


async def send(
    connection: KeepAliveConnection, url: str, method: str = "GET", **kwargs: object
) -> httpx.Response:
    request = httpx.Request(method, url, extensions={"timeout": TIMEOUTS}, **kwargs)  # type: ignore[arg-type]
    response = await connection.handle_async_request(request)
    await response.aread()
    return response


async def test_two_requests_share_one_connection(serve) -> None:
    server = await serve(OK, OK)
    connection = KeepAliveConnection()
    first = await send(connection, server.url + "/a")
    second = await send(connection, server.url + "/b")
    assert (first.json(), second.json()) == ({"ok": True}, {"ok": True})
    assert server.connections == 1
    await connection.aclose()


async def test_the_request_goes_out_with_its_host_headers_and_body(serve) -> None:
    server = await serve(OK)
    connection = KeepAliveConnection()
    await send(
        connection,
        server.url + "/v3/customers?limit=1",
        "POST",
        json={"name": "Maria"},
        headers={"access_token": "secret"},
    )
    raw = server.requests[0]
    head, body = raw.split(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /v3/customers?limit=1 HTTP/1.1"
    assert f"Host: 127.0.0.1:{server.port}".encode() in lines
    assert b"Content-Length: 16" in lines
    assert b"access_token: secret" in lines
    assert body == b'{"name":"Maria"}'
    await connection.aclose()


async def test_a_chunked_and_gzipped_answer_is_read_whole_and_decoded(serve) -> None:
    packed = gzip.compress(b'{"items":[1,2,3]}')
    chunked = (
        b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (packed[:7], packed[7:]))
        + b"0\r\n\r\n"
    )
    server = await serve(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n\r\n" + chunked
    )
    connection = KeepAliveConnection()
    assert (await send(connection, server.url)).json() == {"items": [1, 2, 3]}
    await connection.aclose()


async def test_a_plain_answer_reads_as_httpx_reads_one_whole_and_again(serve) -> None:
    """An answer with no content-encoding is handed over as its content, already read: every
    way httpx offers to read it gives the same bytes, and closing it is harmless."""
    body = '{"nome": "João", "ok": true}'.encode()
    head = f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len(body)}"
    server = await serve(head.encode() + b"\r\n\r\n" + body)
    response = await send(KeepAliveConnection(), server.url)

    assert response.content == body
    assert response.json() == {"nome": "João", "ok": True}
    assert await response.aread() == body
    assert b"".join(response.iter_bytes()) == body
    assert b"".join([chunk async for chunk in response.aiter_bytes()]) == body
    await response.aclose()
    assert response.is_closed


async def test_an_answers_headers_are_what_httpx_makes_of_the_same_lines(serve) -> None:
    """The answer's headers are built without httpx's checks (`headers_of`): the same names,
    values, order, case-insensitive look-ups and encoding as httpx.Headers of those lines."""
    lines = [(b"Content-Type", b"application/json"), (b"X-Trace", b"a"), (b"x-trace", b"b")]
    head = b"HTTP/1.1 200 OK\r\n" + b"".join(n + b": " + v + b"\r\n" for n, v in lines)
    server = await serve(head + b"content-length: 2\r\n\r\n{}")
    response = await send(KeepAliveConnection(), server.url)

    expected = httpx.Headers([*lines, (b"content-length", b"2")])
    assert response.headers.raw == expected.raw
    assert response.headers.multi_items() == expected.multi_items()
    assert response.headers.get_list("X-TRACE") == ["a", "b"]
    assert response.headers["content-type"] == "application/json"
    assert response.headers.encoding == expected.encoding


def test_headers_built_from_items_equal_httpxs_own() -> None:
    made = httpx.Headers({"Host": "x", "Content-Type": "application/json", "Accept": "*/*"})
    rebuilt = headers_of(header_items(made))
    assert rebuilt == made
    assert rebuilt.raw == made.raw
    assert dict(rebuilt) == dict(made)
    rebuilt["accept"] = "text/plain"  # a copy: changing it leaves the original alone
    assert made["Accept"] == "*/*"


async def test_an_answer_without_length_runs_until_the_server_closes(serve) -> None:
    server = await serve(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it")
    connection = KeepAliveConnection()
    response = await send(connection, server.url)
    assert response.content == b"all of it"
    assert not connection.is_open
    await connection.aclose()


async def test_an_interim_100_continue_is_skipped(serve) -> None:
    server = await serve((b"HTTP/1.1 100 Continue\r\n\r\n", OK))
    connection = KeepAliveConnection()
    response = await send(connection, server.url)
    assert (response.status_code, response.json()) == (200, {"ok": True})
    await connection.aclose()


async def test_a_head_answer_ends_with_its_headers(serve) -> None:
    server = await serve(b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n", OK)
    connection = KeepAliveConnection()
    head = await send(connection, server.url, "HEAD")
    assert (head.status_code, head.content) == (200, b"")
    assert (await send(connection, server.url)).json() == {"ok": True}
    await connection.aclose()


async def test_a_connection_the_server_closed_while_idle_is_replaced(serve) -> None:
    server = await serve(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi", OK)
    connection = KeepAliveConnection()
    assert (await send(connection, server.url)).content == b"hi"
    assert (await send(connection, server.url)).json() == {"ok": True}
    assert server.connections == 2
    await connection.aclose()


async def test_an_idle_connection_is_not_reused_past_its_expiry(serve) -> None:
    server = await serve(OK, OK)
    connection = KeepAliveConnection(keepalive_expiry=0.05)
    await send(connection, server.url)
    await asyncio.sleep(0.1)
    await send(connection, server.url)
    assert server.connections == 2
    await connection.aclose()


async def test_no_answer_before_the_close_is_a_remote_protocol_error(serve) -> None:
    server = await serve(CLOSE)
    connection = KeepAliveConnection()
    with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
        await send(connection, server.url, "POST", json={})
    await connection.aclose()


async def test_part_of_a_body_before_the_close_is_a_remote_protocol_error(serve) -> None:
    server = await serve(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\nhalf")
    connection = KeepAliveConnection()
    with pytest.raises(httpx.RemoteProtocolError, match="complete message body"):
        await send(connection, server.url)
    await connection.aclose()


async def test_an_answer_that_is_not_http_is_a_remote_protocol_error(serve) -> None:
    server = await serve(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
    connection = KeepAliveConnection()
    with pytest.raises(httpx.RemoteProtocolError, match="not valid HTTP"):
        await send(connection, server.url)
    assert not connection.is_open
    await connection.aclose()


async def test_silence_past_the_read_timeout_is_a_read_timeout_and_drops_the_connection(
    serve,
) -> None:
    server = await serve(SILENCE, OK)
    connection = KeepAliveConnection()
    request = httpx.Request("GET", server.url, extensions={"timeout": {**TIMEOUTS, "read": 0.1}})
    with pytest.raises(httpx.ReadTimeout):
        await connection.handle_async_request(request)
    assert not connection.is_open
    assert (await send(connection, server.url)).json() == {"ok": True}
    assert server.connections == 2
    await connection.aclose()


async def test_a_refused_connection_is_a_connect_error(serve) -> None:
    server = await serve()
    port = server.port
    connection = KeepAliveConnection()
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    free = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    assert free != port
    with pytest.raises(httpx.ConnectError):
        await send(connection, f"http://127.0.0.1:{free}")


async def test_a_cancelled_request_leaves_no_connection_behind(serve) -> None:
    server = await serve(SILENCE, OK)
    connection = KeepAliveConnection()
    waiting = asyncio.ensure_future(send(connection, server.url))
    await asyncio.sleep(0.1)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert not connection.is_open
    assert (await send(connection, server.url)).json() == {"ok": True}
    await connection.aclose()


async def test_another_origin_gets_a_connection_of_its_own(serve) -> None:
    first, second = await serve(OK), await serve(OK)
    connection = KeepAliveConnection()
    await send(connection, first.url)
    await send(connection, second.url)
    assert (first.connections, second.connections) == (1, 1)
    await connection.aclose()


async def test_a_second_request_in_flight_on_one_connection_is_refused(serve) -> None:
    server = await serve(SILENCE)
    connection = KeepAliveConnection()
    waiting = asyncio.ensure_future(send(connection, server.url))
    await asyncio.sleep(0.05)
    with pytest.raises(RuntimeError, match="one request at a time"):
        await send(connection, server.url)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await connection.aclose()


async def test_a_body_the_server_never_reads_ends_in_a_write_timeout() -> None:
    async def never_read(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)

    server = await asyncio.start_server(never_read, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    connection = KeepAliveConnection()
    request = httpx.Request(
        "POST",
        f"http://127.0.0.1:{port}/upload",
        content=b"x" * (64 * 1024 * 1024),  # far more than loopback's socket buffers hold
        extensions={"timeout": {**TIMEOUTS, "write": 0.2}},
    )
    with pytest.raises(httpx.WriteTimeout):
        await connection.handle_async_request(request)
    assert not connection.is_open
    server.close()


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by its own key: (certificate, key) as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certificate_file, key_file = folder / "server.pem", folder / "server.key"
    certificate_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return certificate_file, key_file


async def test_https_is_spoken_over_tls_and_the_server_certificate_is_verified(
    tmp_path: Path,
) -> None:
    """Real vendors are reached over TLS: the connection verifies the server's certificate
    against the given context and refuses one it does not trust."""
    certificate, key = self_signed_certificate(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(certificate, key)
    scripted = ScriptedServer([OK])
    server = await asyncio.start_server(scripted.handle, "127.0.0.1", 0, ssl=server_tls)
    url = f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}/secure"
    trusting = ssl.create_default_context(cafile=str(certificate))
    connection = KeepAliveConnection(ssl_context=trusting)
    assert (await send(connection, url)).json() == {"ok": True}
    assert scripted.requests[0].startswith(b"GET /secure HTTP/1.1")
    await connection.aclose()
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        await send(KeepAliveConnection(ssl_context=ssl.create_default_context()), url)
    server.close()
