"""How a stored, acknowledged delivery starts its processing (DESIGN.md, principle 2).

The service hands each NEW delivery (never a redelivery) to a Trigger after the 2xx was sent.
A trigger never blocks the request and never raises into it: if it fails, or the process dies
first, the delivery is still in the inbox, unprocessed, and the reconciler claims it.

- `DeploymentTrigger`: `run_deployment("handle-deliveries/handle-deliveries",
  parameters={"inbox_ids": [id]}, idempotency_key="inbox-<vendor>-<event id>", timeout=0)`;
  the Prefect server refuses a second run with the same key, so even two receivers racing on
  one redelivery start one flow run. For several machines with a Prefect server.
- `InProcessTrigger`: one asyncio task in the service's loop drains a queue and calls the
  runner with every id that arrived meanwhile (a flow run costs ~0.15 s, so a burst of
  deliveries becomes a few batches, not one flow run each). For one machine.
- `NoTrigger`: store only; the reconciler does the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from leadflow.privacy import mask_text

logger = logging.getLogger("leadflow.webhooks")

#: Called with the inbox ids to process; sync or async. The default imports flows lazily.
Runner = Callable[[list[int]], Awaitable[Any] | Any]
#: Starts a deployment run; defaults to Prefect's `arun_deployment`.
DeploymentStarter = Callable[..., Awaitable[Any]]

MAX_BATCH = 500
MAX_CONCURRENT_DEPLOYMENT_CALLS = 16


@dataclass(frozen=True)
class NewDelivery:
    """A delivery that was stored for the first time."""

    vendor: str
    event_id: str
    inbox_id: int | None


class Trigger(Protocol):
    def submit(self, delivery: NewDelivery) -> None:
        """Start processing `delivery` in the background; never blocks, never raises."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class NoTrigger:
    """Store only: the reconciler processes the inbox on its schedule."""

    def submit(self, delivery: NewDelivery) -> None:
        return None

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


async def default_runner(inbox_ids: list[int]) -> None:
    """Run the journey's `handle_deliveries` flow on these inbox rows, in this process."""
    from flows import handle_deliveries  # lazily: the flows import Prefect and every task

    await _maybe_await(handle_deliveries(inbox_ids=inbox_ids))


async def _maybe_await(result: Any) -> Any:
    if inspect.isawaitable(result):
        return await result
    return result


class InProcessTrigger:
    """Batches new deliveries into calls of `runner`, from one task in the service's loop."""

    def __init__(self, runner: Runner | None = None, max_batch: int = MAX_BATCH) -> None:
        self._runner = runner or default_runner
        self._max_batch = max_batch
        self._queue: asyncio.Queue[NewDelivery] | None = None
        self._worker: asyncio.Task[None] | None = None

    def submit(self, delivery: NewDelivery) -> None:
        if delivery.inbox_id is None or self._queue is None:
            return  # no id to hand over, or not started: the reconciler will find it
        self._queue.put_nowait(delivery)

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._worker = asyncio.create_task(self._drain(), name="webhooks-in-process-trigger")

    async def stop(self) -> None:
        """Let the runner finish what was already queued, then stop."""
        if self._queue is None or self._worker is None:
            return
        await self._queue.join()
        self._worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._worker
        self._queue = self._worker = None

    async def _drain(self) -> None:
        assert self._queue is not None
        queue = self._queue
        while True:
            batch = [await queue.get()]
            while len(batch) < self._max_batch and not queue.empty():
                batch.append(queue.get_nowait())
            try:
                await self._run([d.inbox_id for d in batch if d.inbox_id is not None])
            finally:
                for _ in batch:
                    queue.task_done()

    async def _run(self, inbox_ids: list[int]) -> None:
        try:
            if inspect.iscoroutinefunction(self._runner):
                await self._runner(inbox_ids)
            else:
                await _maybe_await(await asyncio.to_thread(self._runner, inbox_ids))
        except Exception as exc:  # the rows stay unprocessed: the reconciler takes them
            logger.warning(
                "processing %d inbox deliveries in-process failed: %s; the reconciler will "
                "retry them",
                len(inbox_ids),
                mask_text(f"{type(exc).__name__}: {exc}"),
            )


class DeploymentTrigger:
    """One `run_deployment` per new delivery, keyed so the server starts it at most once."""

    def __init__(
        self,
        deployment_name: str,
        starter: DeploymentStarter | None = None,
        max_concurrent: int = MAX_CONCURRENT_DEPLOYMENT_CALLS,
    ) -> None:
        self._name = deployment_name
        self._starter = starter
        self._max_concurrent = max_concurrent
        self._semaphore: asyncio.Semaphore | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, delivery: NewDelivery) -> None:
        if delivery.inbox_id is None or self._semaphore is None:
            return
        task = asyncio.get_running_loop().create_task(self._start(delivery))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def start(self) -> None:
        self._semaphore = asyncio.Semaphore(self._max_concurrent)
        if self._starter is None:
            from prefect.deployments.flow_runs import arun_deployment

            self._starter = arun_deployment

    async def stop(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._semaphore = None

    async def _start(self, delivery: NewDelivery) -> None:
        assert self._semaphore is not None
        assert self._starter is not None
        async with self._semaphore:
            try:
                await self._starter(
                    self._name,
                    parameters={"inbox_ids": [delivery.inbox_id]},
                    idempotency_key=idempotency_key(delivery.vendor, delivery.event_id),
                    timeout=0,
                    as_subflow=False,
                )
            except Exception as exc:
                logger.warning(
                    "could not start %s for a %s delivery (inbox %s): %s; the reconciler will "
                    "process it",
                    self._name,
                    delivery.vendor,
                    delivery.inbox_id,
                    mask_text(f"{type(exc).__name__}: {exc}"),
                )


def idempotency_key(vendor: str, event_id: str) -> str:
    """The flow-run idempotency key of a delivery: the same delivery never starts two runs."""
    return f"inbox-{vendor}-{event_id}"
