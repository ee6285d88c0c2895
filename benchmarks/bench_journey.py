"""The journey's throughput and what orchestration costs, beside a plain asyncio + httpx script
making the same vendor calls with the same concurrency, in the same run (issue 10).

Two figures, the sandbox in its own process with 20 ms of latency on every vendor call:

1. Intake (a qualified lead → Pipedrive person search, person, deal) at 50 in flight: leads per
   second and CPU milliseconds per lead of leadflow's process (Prefect client + ledger + vendor
   clients) beside the plain script's, the median of five rounds taken in turn. The plain
   script gives each lead in flight an httpx client with one connection of its own, the way
   ../shared/LIBRARIES.md measured httpx fastest: until 2026-12-04 it shared one pool of 50
   connections, whose bookkeeping (encode/httpx#3215) made it spend 16-19 ms of CPU per lead
   instead of about 6. A dedicated automation tool measured on this machine spends 22-36 ms of
   CPU per lead on this work (../shared/LIBRARIES.md).
2. The whole journey (recorded lead → welcomed: Pipedrive, DocuSign, Asaas + WhatsApp, Hostinger,
   welcome + note), the simulated people acting on what waits for them in both runs (the plain
   script's at once, inside its concurrency; leadflow's a moment after it appears, in a process
   of their own, while its reconciler runs again and again): leads per second, the median of
   three rounds taken in turn, beside two baselines making the same calls in the same rounds:
   - the one issue 10 names and sets the 0.8x target against: a plain asyncio + httpx script
     (`_httpx_journey`), each lead in flight on its own httpx client, as the intake's;
   - a stricter one: the same calls through leadflow's own vendor clients (and so on leadflow's
     own connections, blocks/keepalive.py), without Prefect or the ledger (`_clients_journey`).
     What leadflow's run takes beyond it is orchestration alone: the orchestration overhead
     per lead is leadflow's wall time minus this script's. httpx's calls cost several times
     the CPU of leadflow's clients, so this baseline is the faster of the two.

"The same concurrency" is what the vendors see: at most `IN_FLIGHT` calls in flight. The plain
scripts have `IN_FLIGHT` leads in flight, each making one call at a time; leadflow's steps keep
`IN_FLIGHT` calls in flight (its `concurrency` setting) on up to twice as many leads, since a
lead's step also waits on the ledger's writes (tasks/journey.py, `for_each`). With one lead per
call, the journey took about a tenth longer (18.7 s against 17.0-17.9 s for 1,000 leads on
2026-12-04).

leadflow runs as in production: the objects its start-up made kept out of the garbage
collector's scans, as in a deployment's flow-run process (leadflow/runtime.py); flows on a
Prefect server backed by PostgreSQL (DESIGN.md principle 8), started for the run when
LEADFLOW_BENCH_DATABASE_URL (or LEADFLOW_TEST_DATABASE_URL) names a PostgreSQL server, the one
PREFECT_API_URL names if set, and otherwise Prefect's temporary server, which the figures then
name (on its SQLite, taking a vendor's global concurrency slots met "database is locked" → 503
three or four times a run, and Prefect's client waited 2 s each time: a quarter of the run);
the ledger on SQLite in a temporary folder, Blocks saved by `setup_sandbox`. leadflow and the
stricter baseline use one connection pool per vendor. Two of leadflow's own client-side limits
are raised, in both of their runs, to what the sandbox allows, so that neither measures a
vendor tier instead of itself (the httpx script has no such limits): the
Pipedrive Block's burst limit, and the WhatsApp number's throughput, from the default tier's 80
messages a second to Cloud API's highest, 1,000 (at 80, the plain run sent exactly 80 a second:
two messages per lead pinned it at 40 leads/s, and leadflow spent 25 s of its run waiting on
that tier, since each stage sends its whole batch's messages at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import socket
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import httpx

from benchmarks import Figure
from benchmarks.bench_sandbox import _free_port, _serve

if TYPE_CHECKING:
    from blocks.keepalive import KeepAliveConnection

LEADS = int(os.environ.get("LEADFLOW_BENCH_LEADS", "1000"))
IN_FLIGHT = 50
#: the intake is measured this many times, leadflow and the plain script in turn (see main)
INTAKE_ROUNDS = 5
#: the whole journey likewise
JOURNEY_ROUNDS = 3
LATENCY_MS = 20
#: the WhatsApp number's throughput in both runs: Cloud API's highest tier (see the docstring)
WHATSAPP_MESSAGES_PER_SECOND = 1_000
VENDORS = ("facebook", "pipedrive", "docusign", "asaas", "hostinger", "whatsapp")


def _sandbox_code(port: int) -> str:
    return (
        "from sandbox.server import serve; "
        f"serve(seed=0, host='127.0.0.1', port={port}, people=False)"
    )


def _transport() -> httpx.AsyncHTTPTransport:
    """One connection: the plain script gives each lead in flight a client of its own, as
    ../shared/LIBRARIES.md measured httpx fastest (one shared pool of 50 connections spent
    most of its CPU in the pool's bookkeeping, encode/httpx#3215)."""
    return httpx.AsyncHTTPTransport(
        # idle connections dropped after a second, before the sandbox's server drops them (5 s)
        limits=httpx.Limits(max_connections=1, max_keepalive_connections=1, keepalive_expiry=1.0),
        socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
    )


def _client(url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, transport=_transport(), timeout=60)


def _admin(url: str) -> httpx.Client:
    return httpx.Client(base_url=url + "/__sandbox__", timeout=60)


def _prepare_sandbox(url: str, *, leads: int) -> list[dict[str, Any]]:
    """Latency on every vendor, instant activation, no invalid CPFs; `leads` form answers.

    The reset revokes every access token the sandbox issued, so this process's cached DocuSign
    token is dropped too: kept, it made the next run's first 50 envelopes meet a 401 and be
    sent again."""
    from blocks.docusign import forget_access_tokens

    with _admin(url) as admin:
        admin.post("/reset").raise_for_status()
        forget_access_tokens()
        for vendor in VENDORS:
            admin.put(f"/faults/{vendor}", json={"latency_ms": LATENCY_MS}).raise_for_status()
        admin.put("/hostinger/settings", json={"activation_delay_seconds": 0}).raise_for_status()
        admin.put("/docusign/signer", json={"invalid_cpf_rate": 0}).raise_for_status()
        admin.put("/whatsapp/limits", json={"pair_interval_seconds": 0}).raise_for_status()
        if not leads:
            return []
        created = admin.post(
            "/facebook/leads", json={"count": leads, "bad_share": 0, "webhook": False}
        )
        created.raise_for_status()
        return list(created.json()["leads"])


class People:
    """The simulated people's client (the sandbox's admin API), the same in both runs.

    One kept-alive connection per action in flight (blocks/keepalive.py), dropped after a second
    idle, well before the sandbox's server drops it (5 s), so no action meets a stale one. Why
    not httpx: a new connection per action made the people about a sixth of leadflow's CPU in
    this benchmark, and an httpx pool of 50 kept-alive connections three times that (the pool's
    bookkeeping, encode/httpx#3215); neither is what the benchmark measures.
    """

    def __init__(self, url: str) -> None:
        self._base = url + "/__sandbox__"
        self._idle: list[KeepAliveConnection] = []

    async def call(self, method: str, path: str) -> httpx.Response:
        from blocks.keepalive import KeepAliveConnection

        connection = self._idle.pop() if self._idle else KeepAliveConnection(keepalive_expiry=1)
        request = httpx.Request(method, self._base + path, extensions={"timeout": _PEOPLE_WAIT})
        try:
            response = await connection.handle_async_request(request)
        except BaseException:
            await connection.aclose()
            raise
        self._idle.append(connection)
        response.request = request
        return response.raise_for_status()

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            await connection.aclose()


_PEOPLE_WAIT = {"connect": 60.0, "read": 60.0, "write": 60.0, "pool": 60.0}


# -------------------------------------------------------------------------------- leadflow


def _leadflow_environment(url: str, folder: Path) -> None:
    from leadflow.business import reset_business_cache
    from leadflow.settings import reset_settings_cache

    os.environ["LEADFLOW_DATABASE_URL"] = f"sqlite:///{folder / 'ledger.db'}"
    os.environ["LEADFLOW_BUSINESS_FILE"] = str(folder / "leadflow.toml")
    reset_settings_cache()
    reset_business_cache()


async def _setup_leadflow(url: str, folder: Path, *, recheck_seconds: float) -> None:
    """Blocks and leadflow.toml for a run. `recheck_seconds`: when a journey waiting on a person
    is read again (the journey's people act within the run, so short; the intake's, the
    default, so the `deals` flow does not read back the deals it has just opened)."""
    from blocks import PipedriveCredentials, WhatsAppCredentials
    from blocks.http import forget_rate_limits
    from leadflow.setup import setup_sandbox
    from ledger import shared_ledger

    _leadflow_environment(url, folder)
    shared_ledger(os.environ["LEADFLOW_DATABASE_URL"]).upgrade()
    await setup_sandbox(
        url,
        blocks_name="bench",
        business_file=folder / "leadflow.toml",
        extra_toml=(
            "\n[timing]\nretry_base_seconds = 0.05\n"
            f"waiting_recheck_seconds = {recheck_seconds}\n"
            "activation_poll_seconds = 0.01\nactivation_poll_cap_seconds = 0.05\n"
        ),
    )
    text = (folder / "leadflow.toml").read_text(encoding="utf-8")
    head = f"concurrency = {IN_FLIGHT}\nbatch_size = {max(LEADS, 1)}\n"
    (folder / "leadflow.toml").write_text(
        text.replace('blocks = "bench"\n', f'blocks = "bench"\n{head}'), encoding="utf-8"
    )
    pipedrive = await PipedriveCredentials.load("bench")
    pipedrive.burst_limit = 100_000  # the sandbox's own limit is not what is measured
    await pipedrive.save("bench", overwrite=True)
    whatsapp = await WhatsAppCredentials.load("bench")
    whatsapp.pair_interval_seconds = 0
    whatsapp.messages_per_second = WHATSAPP_MESSAGES_PER_SECOND
    await whatsapp.save("bench", overwrite=True)
    forget_rate_limits()  # an account's limiter is made by its first client: setup's


def _qualified_leads(ledger: Any, prefix: str, count: int, first: int) -> None:
    """`count` leads recorded and through the gate, as the intake finds them; their phones
    numbered from `first` (one phone in two leads would make the second a duplicate)."""
    from data_quality.lead import NormalizedLead, PhoneKind

    for n in range(count):
        recorded = ledger.record_lead("bench", f"{prefix}-{n}", {"n": n})
        lead = NormalizedLead(
            source="bench",
            source_id=f"{prefix}-{n}",
            full_name=f"Cliente {prefix.title()} {n}",
            email=f"{prefix}{n}@exemplo.com.br",
            phone=f"+55119{80000000 + first + n:08d}",
            phone_kind=PhoneKind.MOBILE,
        )
        ledger.pass_gate(recorded.lead_id, lead)


async def _leadflow_intake(url: str, folder: Path, round_: int) -> tuple[float, float]:
    """(leads/s, CPU ms per lead): qualified leads into Pipedrive by the `deals` flow.

    Before the first round a few leads go through (the lead-id field, the Blocks, the
    connections, Prefect's first flow run); only then are the measured leads gated, so the
    measured run does the intake for each of them (search, person, deal) and nothing else.
    Each later round has a new ledger: in one ledger, the deals of the rounds before fell due
    for their status check inside the measured run (1,000 more reads a round).
    """
    from flows import deals
    from leadflow.runtime import settle_startup_heap
    from leadflow.settings import reset_settings_cache
    from ledger import shared_ledger

    if round_ > 0:  # a ledger of its own (see above)
        os.environ["LEADFLOW_DATABASE_URL"] = f"sqlite:///{folder / f'ledger-{round_}.db'}"
        reset_settings_cache()
    ledger = shared_ledger(os.environ["LEADFLOW_DATABASE_URL"])
    ledger.upgrade()
    if round_ == 0:
        # as a deployment's flow-run process does once its flows are imported (leadflow/runtime.py)
        settle_startup_heap()
        _qualified_leads(ledger, "warm", 5, first=9_000_000)
        await deals()
    _qualified_leads(ledger, f"intake{round_}-", LEADS, first=round_ * LEADS)
    cpu, started = time.process_time(), time.perf_counter()
    await deals()
    elapsed = time.perf_counter() - started
    counts = ledger.journey_counts()
    opened = sum(v for k, v in counts.items() if str(k) == "deal_open")
    expected = LEADS + (5 if round_ == 0 else 0)
    if opened < expected:
        raise RuntimeError(f"leadflow intake left {expected - opened} leads without a deal")
    return LEADS / elapsed, (time.process_time() - cpu) * 1000 / LEADS


#: how long something waits for its person before they act on it in leadflow's run: a moment,
#: as the sandbox's own people act some delay after an object appears (sandbox/people.py). At
#: once, a payer paid most charges before leadflow had read their PIX code, so leadflow skipped
#: sending it (a paid charge has no code): less work than the plain script's, not the same.
PEOPLE_DELAY_SECONDS = 0.25


async def _people_acting(url: str, done: asyncio.Event) -> None:
    """The simulated people at work while leadflow works, as people are: each accepts what
    waits for them (a deal, an envelope, a charge) a moment after it appears, `IN_FLIGHT` at a
    time, and the reconciler reads it on its next run. (Acting only between the reconciler's
    runs left leadflow idle for a fifth of its run, while the plain script's people act inside
    its concurrency.)"""
    gate = asyncio.Semaphore(IN_FLIGHT)
    people = People(url)
    first_seen: dict[tuple[str, str], float] = {}

    async def accept(role: str, object_id: str) -> None:
        async with gate:
            await people.call("POST", f"/people/{role}/accept/{object_id}")

    try:
        while not done.is_set():
            waiting = (await people.call("GET", "/people")).json()["roles"]
            now = time.monotonic()
            due = []
            for role, data in waiting.items():
                for object_id in data["pending"]:
                    if now - first_seen.setdefault((role, object_id), now) >= PEOPLE_DELAY_SECONDS:
                        due.append((role, object_id))
            await asyncio.gather(*(accept(role, object_id) for role, object_id in due))
            if not due:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(done.wait(), 0.05)
    finally:
        await people.aclose()


def _people_process(url: str, ready: Any, stop: Any) -> None:
    """`_people_acting` in a process of its own, until `stop` is set: people are not part of
    leadflow's process (in it, their polling and their 3,000 actions took about a tenth of
    the CPU that bounds leadflow's run)."""

    async def act() -> None:
        done = asyncio.Event()
        acting = asyncio.create_task(_people_acting(url, done))
        ready.set()
        await asyncio.to_thread(stop.wait)
        done.set()
        await acting

    asyncio.run(act())


@contextlib.contextmanager
def _people_at_work(url: str) -> Iterator[None]:
    """The simulated people acting, in their own process, while the block runs."""
    context = multiprocessing.get_context("spawn")  # never fork a process with threads
    ready, stop = context.Event(), context.Event()
    process = context.Process(target=_people_process, args=(url, ready, stop), daemon=True)
    process.start()
    try:
        if not ready.wait(60):
            raise RuntimeError("the simulated people did not start")
        yield
    finally:
        stop.set()
        process.join(30)
        if process.exitcode != 0:
            raise RuntimeError(f"the simulated people's process ended with {process.exitcode}")


async def _leadflow_journey(url: str) -> float:
    """Seconds for every recorded lead to reach `welcomed`, the reconciler run again and again
    while the people act."""
    from data_quality.suite import gate_suite
    from flows import intake, lead_to_cash
    from leadflow.runtime import settle_startup_heap
    from ledger import JourneyState, shared_ledger

    ledger = shared_ledger(os.environ["LEADFLOW_DATABASE_URL"])
    # the quality gate's suite (Great Expectations' import, seconds) is built once per worker
    # process, not per lead: a long-running worker has it before its first lead, as here
    await asyncio.to_thread(gate_suite)
    settle_startup_heap()  # as a flow-run process does once it has them (leadflow/runtime.py)
    with _people_at_work(url):
        started = time.perf_counter()
        await intake()
        for _ in range(200):
            await lead_to_cash()
            counts = ledger.journey_counts()
            if counts.get(JourneyState.WELCOMED, 0) >= LEADS:
                return time.perf_counter() - started
            stuck = {str(k): v for k, v in counts.items() if v and k is JourneyState.DEAD_LETTERED}
            if stuck:
                raise RuntimeError(f"leadflow journey dead-lettered: {stuck}")
    raise RuntimeError(f"leadflow journey did not finish: {ledger.journey_counts()}")


# ------------------------------------------------------------------------------ the plain script


class Plain:
    """The same vendor calls as leadflow makes, as a person would script them by hand."""

    def __init__(self, url: str, credentials: dict[str, dict[str, str]], token: str) -> None:
        self.url = url
        self.c = credentials
        self.docusign_token = token
        self.gate = asyncio.Semaphore(IN_FLIGHT)
        self.field_key = ""
        #: one client (one connection) per lead in flight, taken and given back (see _transport)
        self._idle: list[httpx.AsyncClient] = []

    @contextlib.asynccontextmanager
    async def lent(self) -> AsyncIterator[httpx.AsyncClient]:
        """An idle client (one connection) for one lead's calls, given back after them."""
        http = self._idle.pop() if self._idle else _client(self.url)
        try:
            yield http
        finally:
            self._idle.append(http)

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for client in idle:
            await client.aclose()

    def _pipedrive(self) -> dict[str, str]:
        return {"x-api-token": self.c["pipedrive"]["api_token"]}

    async def _ok(self, response: Any) -> Any:
        """The answer's JSON (an object or a list), or an error naming the call."""
        r = await response
        if r.status_code >= 400:
            raise RuntimeError(
                f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text[:200]}"
            )
        return r.json() if r.content else {}

    async def field(self) -> None:
        async with self.lent() as http:
            fields = await self._ok(
                http.get("/pipedrive/api/v1/dealFields", headers=self._pipedrive())
            )
            for field in fields.get("data") or []:
                if field["name"] == "leadflow lead id":
                    self.field_key = field["key"]
                    return
            made = await self._ok(
                http.post(
                    "/pipedrive/api/v1/dealFields",
                    json={"name": "leadflow lead id", "field_type": "varchar"},
                    headers=self._pipedrive(),
                )
            )
            self.field_key = made["data"]["key"]

    async def _search(self, http: httpx.AsyncClient, term: str, field: str) -> dict[str, Any]:
        """A person search, asked again once if the connection was dropped under it (a read:
        safe to repeat; a whole run once failed on one such drop)."""
        try:
            return await self._ok(self._get_search(http, term, field))
        except (httpx.RemoteProtocolError, httpx.ReadError):
            return await self._ok(self._get_search(http, term, field))

    def _get_search(
        self, http: httpx.AsyncClient, term: str, field: str
    ) -> Awaitable[httpx.Response]:
        return http.get(
            "/pipedrive/api/v2/persons/search",
            params={"term": term, "fields": field, "exact_match": "true"},
            headers=self._pipedrive(),
        )

    async def intake(self, n: int, name: str, email: str, phone: str) -> int:
        async with self.lent() as http:
            h = self._pipedrive()
            for term, field in ((email, "email"), (phone, "phone")):
                await self._search(http, term, field)
            person = await self._ok(
                http.post(
                    "/pipedrive/api/v2/persons",
                    json={
                        "name": name,
                        "emails": [{"value": email, "primary": True}],
                        "phones": [{"value": phone, "primary": True}],
                    },
                    headers=h,
                )
            )
            deal = await self._ok(
                http.post(
                    "/pipedrive/api/v2/deals",
                    json={
                        "title": f"{name} — Site",
                        "person_id": person["data"]["id"],
                        "value": 1490,
                        "currency": "BRL",
                        "custom_fields": {self.field_key: str(n)},
                    },
                    headers=h,
                )
            )
            return int(deal["data"]["id"])


async def _plain_intake(
    url: str, credentials: dict[str, dict[str, str]], round_: int
) -> tuple[float, float]:
    plain = Plain(url, credentials, "")
    await plain.field()

    async def one(n: int) -> None:
        number = round_ * LEADS + n
        async with plain.gate:
            await plain.intake(
                n,
                f"Cliente Plain {number}",
                f"plain{number}@exemplo.com.br",
                f"+55119{70000000 + number:08d}",
            )

    cpu, started = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one(n) for n in range(LEADS)))
    elapsed = time.perf_counter() - started
    await plain.aclose()
    return LEADS / elapsed, (time.process_time() - cpu) * 1000 / LEADS


async def _clients_journey(url: str, credentials: dict[str, Any], folder: Path) -> float:
    """Seconds for the same vendor calls as leadflow's journey, made with leadflow's own vendor
    clients but no Prefect and no ledger: what is left over in leadflow's time is orchestration."""
    from blocks.asaas import NewCustomer, NewPixCharge
    from blocks.docusign import EnvelopeFromTemplate, TemplateRole, TextCustomField
    from blocks.hostinger import NewWebsite
    from blocks.http import forget_rate_limits
    from blocks.pipedrive import PipedriveCredentials
    from blocks.pipedrive_models import (
        ContactEntry,
        DealCreate,
        DealFieldCreate,
        NoteCreate,
        PersonCreate,
    )
    from blocks.whatsapp import TemplateComponent, TemplateParameter, WhatsAppCredentials
    from leadflow.business import get_business
    from leadflow.sandbox_blocks import sandbox_credentials

    business = get_business()
    form = business.forms[0]
    product = business.products["site"]
    blocks = sandbox_credentials(url)
    cast(PipedriveCredentials, blocks["pipedrive"]).burst_limit = 100_000
    cast(WhatsAppCredentials, blocks["whatsapp"]).pair_interval_seconds = 0
    cast(WhatsAppCredentials, blocks["whatsapp"]).messages_per_second = WHATSAPP_MESSAGES_PER_SECOND
    forget_rate_limits()
    people = People(url)
    gate = asyncio.Semaphore(IN_FLIGHT)
    async with (
        blocks["facebook"].get_client() as facebook,
        blocks["pipedrive"].get_client() as pipedrive,
        blocks["docusign"].get_client() as docusign,
        blocks["asaas"].get_client() as asaas,
        blocks["hostinger"].get_client() as hostinger,
        blocks["whatsapp"].get_client() as whatsapp,
    ):
        field = await pipedrive.ensure_deal_field(
            DealFieldCreate(name=business.pipedrive.lead_id_field, field_type="varchar")
        )
        started = time.perf_counter()
        leads = await facebook.list_leads(form.id)

        async def one(n: int, answers: dict[str, str]) -> None:
            name, email = answers["full_name"], answers["email"].strip().lower()
            phone = "+" + "".join(ch for ch in answers.get("phone_number", "") if ch.isdigit())
            async with gate:
                person = await pipedrive.find_person(email=email, phone=phone)
                if person is None:
                    person = await pipedrive.create_person(
                        PersonCreate(name=name, emails=[ContactEntry(value=email, primary=True)])
                    )
                deal = await pipedrive.create_deal(
                    DealCreate(
                        title=name,
                        person_id=person.id,
                        value=float(form.value or 0),
                        currency="BRL",
                        custom_fields={field.key: f"plain-{n}"},
                    )
                )
                await people.call("POST", f"/people/salesperson/accept/{deal.id}")
                await pipedrive.get_deal(deal.id)
                envelope = await docusign.create_envelope_from_template(
                    EnvelopeFromTemplate(
                        template_id=business.docusign.template_id or "",
                        template_roles=[TemplateRole(role_name="Cliente", name=name, email=email)],
                        custom_fields=[TextCustomField(name="leadflow_lead_id", value=f"p{n}")],
                        transaction_id=f"plain-{n}",
                    )
                )
                await people.call("POST", f"/people/signer/accept/{envelope.envelope_id}")
                await docusign.get_envelope(envelope.envelope_id)
                cpf = (await docusign.get_envelope_form_data(envelope.envelope_id)).values()["cpf"]
                await asaas.find_customer(external_reference=f"plain-{n}", cpf_cnpj=cpf)
                customer = await asaas.create_customer(
                    NewCustomer(
                        name=name, cpf_cnpj=cpf, email=email, external_reference=f"plain-{n}"
                    )
                )
                charge = await asaas.create_pix_charge(
                    NewPixCharge(
                        customer=customer.id,
                        value=form.value,
                        due_date="2027-01-10",
                        external_reference=f"plain-{n}-pix",
                    )
                )
                qr = await asaas.get_pix_qr_code(charge.id)
                body = [
                    TemplateComponent(
                        type="body",
                        parameters=[
                            TemplateParameter.of_text(name.split()[0]),
                            TemplateParameter.of_text(qr.payload),
                        ],
                    )
                ]
                await whatsapp.send_template(phone, "pix_cobranca", components=body)
                await people.call("POST", f"/people/payer/accept/{charge.id}")
                await asaas.get_payment(charge.id)
                datacenters = await hostinger.list_datacenters(product.order_id)
                domain = f"plain-{n}.clientes.exemplo.com.br"
                await hostinger.create_website(
                    NewWebsite(
                        domain=domain,
                        order_id=product.order_id,
                        datacenter_code=datacenters[0].code,
                    )
                )
                await hostinger.find_by_reference(domain)
                welcome = [
                    TemplateComponent(
                        type="body", parameters=[TemplateParameter.of_text(name.split()[0])]
                    )
                ]
                await whatsapp.send_template(phone, "boas_vindas", components=welcome)
                await pipedrive.create_note(NoteCreate(content=f"welcomed {n}", deal_id=deal.id))

        await asyncio.gather(*(one(n, lead.answers()) for n, lead in enumerate(leads)))
        elapsed = time.perf_counter() - started
    await people.aclose()
    if len(leads) < LEADS:
        raise RuntimeError(f"the plain journey saw {len(leads)} leads, not {LEADS}")
    return elapsed


async def _httpx_journey(url: str, credentials: dict[str, Any]) -> float:
    """Seconds for the same vendor calls as leadflow's journey, written by hand on asyncio +
    httpx (the baseline issue 10 names), each lead in flight on an httpx client of its own (one
    connection: how httpx runs fastest, see `_transport`). The requests are the ones leadflow's
    clients send, field for field; the DocuSign access token is taken once before the clock
    starts, as the deal field is, and is not per-lead work."""
    from blocks.pipedrive import PipedriveCredentials
    from blocks.pipedrive_models import DealFieldCreate
    from leadflow.business import get_business
    from leadflow.sandbox_blocks import sandbox_credentials

    business = get_business()
    form, product = business.forms[0], business.products["site"]
    blocks = sandbox_credentials(url)
    async with blocks["docusign"].get_client() as docusign:
        token = await docusign.tokens.access_token()
    lead_id_field = DealFieldCreate(name=business.pipedrive.lead_id_field, field_type="varchar")
    async with cast(PipedriveCredentials, blocks["pipedrive"]).get_client() as pipedrive:
        field_key = (await pipedrive.ensure_deal_field(lead_id_field)).key
    plain = Plain(url, credentials, token)
    ok, c = plain._ok, credentials
    agent = {"User-Agent": "plain-httpx"}
    pd = {**agent, "x-api-token": c["pipedrive"]["api_token"]}
    ds = {**agent, "Authorization": f"Bearer {token}"}
    asaas = {**agent, "access_token": c["asaas"]["api_key"]}
    hostinger = {**agent, "Authorization": f"Bearer {c['hostinger']['api_token']}"}
    whatsapp = {**agent, "Authorization": f"Bearer {c['whatsapp']['access_token']}"}
    fb = {**agent, "Authorization": f"Bearer {c['facebook']['page_access_token']}"}
    envelopes = f"/docusign/restapi/v2.1/accounts/{c['docusign']['account_id']}/envelopes"
    messages = f"/whatsapp/v23.0/{c['whatsapp']['phone_number_id']}/messages"
    value = float(form.value or 0)
    people = People(url)

    def template(to: str, name: str, *texts: str) -> dict[str, Any]:
        parameters = [{"type": "text", "text": text} for text in texts]
        return {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to,
            "type": "template",
            "template": {
                "name": name,
                "language": {"policy": "deterministic", "code": "pt_BR"},
                "components": [{"type": "body", "parameters": parameters}],
            },
        }

    async def one(n: int, answers: dict[str, str]) -> None:
        name, email = answers["full_name"], answers["email"].strip().lower()
        digits = "".join(ch for ch in answers.get("phone_number", "") if ch.isdigit())
        first, reference = name.split()[0], f"plain-{n}"
        async with plain.gate, plain.lent() as http:
            for term, kind in ((email, "email"), ("+" + digits, "phone")):
                await ok(
                    http.get(
                        "/pipedrive/api/v2/persons/search",
                        params={
                            "term": term,
                            "fields": kind,
                            "exact_match": "true",
                            "limit": 1,
                        },
                        headers=pd,
                    )
                )
            emails = [{"value": email, "primary": True, "label": "work"}]
            person = await ok(
                http.post(
                    "/pipedrive/api/v2/persons",
                    json={"name": name, "emails": emails},
                    headers=pd,
                )
            )
            deal = await ok(
                http.post(
                    "/pipedrive/api/v2/deals",
                    json={
                        "title": name,
                        "person_id": person["data"]["id"],
                        "value": value,
                        "currency": "BRL",
                        "custom_fields": {field_key: reference},
                    },
                    headers=pd,
                )
            )
            deal_id = deal["data"]["id"]
            await people.call("POST", f"/people/salesperson/accept/{deal_id}")
            await ok(http.get(f"/pipedrive/api/v2/deals/{deal_id}", headers=pd))
            role = {"roleName": "Cliente", "name": name, "email": email}
            lead_field = {"name": "leadflow_lead_id", "value": f"p{n}"}
            envelope = await ok(
                http.post(
                    envelopes,
                    json={
                        "templateId": business.docusign.template_id,
                        "templateRoles": [role],
                        "status": "sent",
                        "customFields": {
                            "textCustomFields": [
                                {**lead_field, "show": "false", "required": "false"}
                            ]
                        },
                        "transactionId": reference,
                    },
                    headers=ds,
                )
            )
            envelope_id = envelope["envelopeId"]
            await people.call("POST", f"/people/signer/accept/{envelope_id}")
            await ok(
                http.get(
                    f"{envelopes}/{envelope_id}",
                    params={"include": "custom_fields"},
                    headers=ds,
                )
            )
            data = await ok(http.get(f"{envelopes}/{envelope_id}/form_data", headers=ds))
            filled = {item["name"]: item.get("value") or "" for item in data["formData"]}
            cpf = "".join(ch for ch in filled["cpf"] if ch.isdigit())
            for query in ({"externalReference": reference}, {"cpfCnpj": cpf}):
                await ok(
                    http.get(
                        "/asaas/v3/customers",
                        params={"offset": 0, "limit": 100, **query},
                        headers=asaas,
                    )
                )
            customer = await ok(
                http.post(
                    "/asaas/v3/customers",
                    json={
                        "name": name,
                        "cpfCnpj": cpf,
                        "email": email,
                        "externalReference": reference,
                    },
                    headers=asaas,
                )
            )
            charge = await ok(
                http.post(
                    "/asaas/v3/payments",
                    json={
                        "billingType": "PIX",
                        "customer": customer["id"],
                        "value": value,
                        "dueDate": "2027-01-10",
                        "externalReference": f"{reference}-pix",
                    },
                    headers=asaas,
                )
            )
            code = await ok(http.get(f"/asaas/v3/payments/{charge['id']}/pixQrCode", headers=asaas))
            pix = template(digits, "pix_cobranca", first, code["payload"])
            await ok(http.post(messages, json=pix, headers=whatsapp))
            await people.call("POST", f"/people/payer/accept/{charge['id']}")
            await ok(http.get(f"/asaas/v3/payments/{charge['id']}", headers=asaas))
            datacenters = await ok(
                http.get(
                    "/hostinger/api/hosting/v1/datacenters",
                    params={"order_id": product.order_id},
                    headers=hostinger,
                )
            )
            domain = f"{reference}.clientes.exemplo.com.br"
            await ok(
                http.post(
                    "/hostinger/api/hosting/v1/websites",
                    json={
                        "domain": domain,
                        "order_id": product.order_id,
                        "datacenter_code": datacenters[0]["code"],
                    },
                    headers=hostinger,
                )
            )
            await ok(
                http.get(
                    "/hostinger/api/hosting/v1/websites",
                    params={"page": 1, "per_page": 100, "domain": domain},
                    headers=hostinger,
                )
            )
            welcome = template(digits, "boas_vindas", first)
            await ok(http.post(messages, json=welcome, headers=whatsapp))
            await ok(
                http.post(
                    "/pipedrive/api/v1/notes",
                    json={"content": f"welcomed {n}", "deal_id": deal_id},
                    headers=pd,
                )
            )

    started = time.perf_counter()
    leads: list[dict[str, str]] = []
    page: str | None = f"/facebook/v23.0/{form.id}/leads"
    params: dict[str, Any] | None = {"fields": _LEAD_FIELDS, "limit": 100}
    async with plain.lent() as http:
        while page:
            body = await ok(http.get(page, params=params, headers=fb))
            leads += [
                {f["name"]: f["values"][0] for f in lead["field_data"] if f["values"]}
                for lead in body["data"]
            ]
            page, params = (body.get("paging") or {}).get("next"), None
    await asyncio.gather(*(one(n, answers) for n, answers in enumerate(leads)))
    elapsed = time.perf_counter() - started
    await plain.aclose()
    await people.aclose()
    if len(leads) < LEADS:
        raise RuntimeError(f"the plain httpx journey saw {len(leads)} leads, not {LEADS}")
    return elapsed


_LEAD_FIELDS = "id,created_time,field_data,form_id,ad_id,campaign_id,is_organic,platform"


# ------------------------------------------------------------------------------------- main


def _objects_made(url: str) -> dict[str, dict[str, int]]:
    """What the run made at each vendor (the sandbox's counters), setup's own objects aside."""
    with _admin(url) as admin:
        counters = admin.get("/counters").raise_for_status().json()
    setup = {("docusign", "access_token"), ("pipedrive", "deal_field")}
    return {
        vendor: {kind: n for kind, n in made.items() if (vendor, kind) not in setup}
        for vendor, made in counters.items()
    }


def _same_work(plain: dict[str, dict[str, int]], leadflow: dict[str, dict[str, int]]) -> None:
    """Both runs made the same objects (every PIX code and welcome sent, one of each object per
    lead): a faster run that did less would measure nothing."""
    if plain != leadflow:
        raise RuntimeError(f"the runs did different work: plain {plain}, leadflow {leadflow}")


@contextlib.contextmanager
def _prefect_server(folder: Path) -> Iterator[str]:
    """The Prefect API leadflow's flows report to during the run (see the module's docstring),
    named for the figures."""
    if os.environ.get("PREFECT_API_URL"):
        yield "the Prefect server at PREFECT_API_URL"
        return
    database_url = os.environ.get("LEADFLOW_BENCH_DATABASE_URL") or os.environ.get(
        "LEADFLOW_TEST_DATABASE_URL"
    )
    if not database_url:
        yield "Prefect's temporary server (SQLite): set LEADFLOW_BENCH_DATABASE_URL for PostgreSQL"
        return
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from sqlalchemy.engine import make_url

    from deployments.local_cluster import prefect_server_on_postgres

    name = f"{make_url(database_url).database or 'postgres'}_bench_journey_prefect"
    with (
        prefect_server_on_postgres(database_url, name, folder) as cluster,
        temporary_settings(updates={PREFECT_API_URL: cluster.api_url}),
    ):
        yield "a Prefect server on PostgreSQL"
        # the flows' logs and events still queued go out before the server stops
        from prefect.events.worker import EventsWorker
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=10)
        EventsWorker.drain_all(timeout=10)


def main() -> list[Figure]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    figures: list[Figure] = []
    with (
        tempfile.TemporaryDirectory() as temp,
        _prefect_server(Path(temp) / "prefect") as prefect,
        _serve(_sandbox_code(port), url + "/__sandbox__/"),
    ):
        folder = Path(temp)
        _prepare_sandbox(url, leads=0)
        credentials = {
            vendor: data["credentials"]
            for vendor, data in httpx.get(url + "/__sandbox__/").json()["vendors"].items()
        }
        asyncio.run(_setup_leadflow(url, folder, recheck_seconds=900))
        # interleaved rounds, the median of each: this machine's speed can swing by half within
        # a minute (the same loop of Python took 0.27-0.46 s of CPU), which one round takes whole
        plains, leadflows = [], []
        for round_ in range(INTAKE_ROUNDS):
            plains.append(asyncio.run(_plain_intake(url, credentials, round_)))
            leadflows.append(asyncio.run(_leadflow_intake(url, folder, round_)))
        plain_rate, plain_cpu = (statistics.median(p[i] for p in plains) for i in (0, 1))
        rate, cpu = (statistics.median(run[i] for run in leadflows) for i in (0, 1))
        figures.append(
            Figure(
                name=(
                    f"leadflow intake, {LEADS} leads, {IN_FLIGHT} in flight, median of "
                    f"{INTAKE_ROUNDS} interleaved rounds ({rate:.0f} leads/s), on {prefect}"
                ),
                value=cpu,
                baseline_name=f"plain asyncio + httpx ({plain_rate:.0f} leads/s)",
                baseline=plain_cpu,
                unit="CPU ms/lead",
                target="< 2.5 ms/lead",
            )
        )
        # the whole journey, interleaved rounds too, each on a fresh sandbox and a new ledger
        plain_runs, httpx_runs, leadflow_runs = [], [], []
        for round_ in range(JOURNEY_ROUNDS):
            _prepare_sandbox(url, leads=LEADS)
            plain_runs.append(asyncio.run(_clients_journey(url, credentials, folder)))
            plain_made = _objects_made(url)
            _prepare_sandbox(url, leads=LEADS)
            httpx_runs.append(asyncio.run(_httpx_journey(url, credentials)))
            _same_work(plain_made, _objects_made(url))
            _prepare_sandbox(url, leads=LEADS)
            journey_folder = folder / f"journey-{round_}"  # a new ledger (the intake's is open)
            journey_folder.mkdir()
            asyncio.run(_setup_leadflow(url, journey_folder, recheck_seconds=0.01))
            leadflow_runs.append(asyncio.run(_leadflow_journey(url)))
            _same_work(plain_made, _objects_made(url))
        plain_seconds = statistics.median(plain_runs)
        httpx_seconds = statistics.median(httpx_runs)
        seconds = statistics.median(leadflow_runs)
        figures.append(
            Figure(
                name=(
                    f"leadflow whole journey, {LEADS} leads, {IN_FLIGHT} in flight, median of "
                    f"{JOURNEY_ROUNDS} interleaved rounds, on {prefect}"
                ),
                value=LEADS / seconds,
                baseline_name="plain asyncio + httpx, a client per lead in flight",
                baseline=LEADS / httpx_seconds,
                unit="leads/s",
                target=">= 0.8x",
            )
        )
        figures.append(
            Figure(
                name="leadflow whole journey, against the stricter baseline",
                value=LEADS / seconds,
                baseline_name="the same calls through leadflow's clients, no Prefect or ledger",
                baseline=LEADS / plain_seconds,
                unit="leads/s",
            )
        )
        figures.append(
            Figure(
                name="orchestration overhead (Prefect + ledger) per lead",
                value=(seconds - plain_seconds) * 1000 / LEADS,
                baseline_name="vendor time per lead (at this concurrency)",
                baseline=plain_seconds * 1000 / LEADS,
                unit="ms/lead",
            )
        )
        figures.append(
            Figure(
                name="leadflow intake throughput",
                value=rate,
                baseline_name="plain asyncio + httpx",
                baseline=plain_rate,
                unit="leads/s",
                target=">= 0.8x",
            )
        )
    return figures


if __name__ == "__main__":
    for figure in main():
        print(figure.line())
