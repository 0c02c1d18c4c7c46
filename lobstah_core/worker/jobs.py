"""Async jobs: a dispatcher that runs queued jobs as engine slots free up.

Jobs share the engine slots with live requests. The dispatcher takes a slot first and only then
claims the oldest queued job, so a job is ``running`` exactly while the engine works on it.
"""

from __future__ import annotations

import asyncio
import logging

from ..engines.base import usage_of
from ..errors import EngineError, LobstahError
from ..tasks import cancel_and_wait
from .job_store import ClaimedJob, JobStore
from .service import WorkerService

__all__ = ["JobRunner"]

log = logging.getLogger("lobstah.worker.jobs")
#: How often expired jobs are swept away.
SWEEP_INTERVAL_S = 60.0


class JobRunner:
    """Runs a worker's queued jobs in the background."""

    def __init__(self, service: WorkerService, store: JobStore) -> None:
        self.service = service
        self.store = store
        self._wakeup = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Mark jobs a dead process left running as interrupted, then start dispatching."""
        interrupted = await asyncio.to_thread(self.store.interrupt_running, self.service.clock_ms())
        if interrupted:
            log.warning("%d job(s) were interrupted by the last shutdown", interrupted)
        self._spawn(self._dispatch())
        self._spawn(self._sweep())

    async def stop(self) -> None:
        """Stop dispatching; jobs still running are cancelled (and marked on next start)."""
        await asyncio.gather(*(cancel_and_wait(task) for task in list(self._tasks)))

    def notify(self) -> None:
        """A job was queued: wake the dispatcher."""
        self._wakeup.set()

    def _spawn(self, coroutine: object) -> None:
        task = asyncio.create_task(coroutine)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _dispatch(self) -> None:
        admission = self.service.admission
        while True:
            await admission.acquire(wait=True)
            job = await asyncio.to_thread(self.store.claim_next, self.service.clock_ms())
            if job is None:
                admission.release()
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            self._spawn(self._run(job))

    async def _run(self, job: ClaimedJob) -> None:
        """Run one claimed job; its engine slot is already held and is released here."""
        service = self.service
        try:
            started = service.clock_ms()
            completion = await service.engine.chat(job.request)
            usage = usage_of(completion)
            if usage is None:
                raise EngineError("the engine reported no token usage")
            signed = service.sign_receipt(
                job.job_id, job.requester, job.request["model"], usage, started
            )
            await service.commit_receipt(signed)  # in our ledger before any poll can see it
            await asyncio.to_thread(
                self.store.finish, job.job_id, completion, signed, service.clock_ms()
            )
        except LobstahError as error:
            await asyncio.to_thread(
                self.store.fail, job.job_id, error.to_body()["error"], service.clock_ms()
            )
        except Exception:
            log.exception("job %s failed", job.job_id)
            error = {"type": "internal_error", "message": "the job failed unexpectedly"}
            await asyncio.to_thread(self.store.fail, job.job_id, error, service.clock_ms())
        finally:
            service.admission.release()

    async def _sweep(self) -> None:
        while True:
            await asyncio.to_thread(self.store.expire, self.service.clock_ms())
            await asyncio.sleep(SWEEP_INTERVAL_S)
