"""Inference batched across jobs and users: many jobs' texts in one Triton request.

Every inference attempt a worker runs hands its texts here (in pieces of at most
`piece` texts, the steps of its progress). A queue per (model, priority) gathers pieces
for `window_s` after the first one arrives, or until `max_batch` texts are waiting, then
sends them as one request and hands each piece its rows of the answer. Requests go out
while earlier ones are still being answered (up to `in_flight` per queue), so batches
keep forming under load. High priority has queues of its own: it never waits behind a
normal batch.

A job hears its progress as its pieces come back, and keeps its own timeout: a piece
whose job gave up before its batch left is dropped from it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from streams.jobs.runners.triton_runner import TritonRunner

log = structlog.get_logger(__name__)

Vectors = list[list[float]]


@dataclass
class _Piece:
    texts: list[str]
    answer: asyncio.Future[Vectors] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class _Queue:
    """One (model, priority)'s waiting pieces and the task that sends them."""

    def __init__(self, batcher: InferenceBatcher, model: str) -> None:
        self.model = model
        self.batcher = batcher
        self.waiting: list[_Piece] = []
        self.arrived = asyncio.Event()
        self.slots = asyncio.Semaphore(batcher.in_flight)
        self.task = asyncio.create_task(self._run(), name=f"batcher-{model}")

    def put(self, piece: _Piece) -> None:
        self.waiting.append(piece)
        self.arrived.set()

    def _size(self) -> int:
        return sum(len(p.texts) for p in self.waiting)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self.arrived.wait()
            await self.slots.acquire()  # a request may go out: gather for the window
            deadline = loop.time() + self.batcher.window_s
            while self._size() < self.batcher.max_batch and loop.time() < deadline:
                self.arrived.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.arrived.wait(), deadline - loop.time())
            batch = self._take()
            if not self.waiting:
                self.arrived.clear()
            if not batch:
                self.slots.release()
                continue
            task = asyncio.create_task(self._send(batch))
            self.batcher.sending.add(task)
            task.add_done_callback(self.batcher.sending.discard)

    def _take(self) -> list[_Piece]:
        """The waiting pieces that fit one request, in arrival order; given-up ones dropped."""
        batch: list[_Piece] = []
        size = 0
        while self.waiting:
            piece = self.waiting[0]
            if piece.answer.done():  # its job timed out or was cancelled
                self.waiting.pop(0)
                continue
            if batch and size + len(piece.texts) > self.batcher.max_batch:
                break
            batch.append(self.waiting.pop(0))
            size += len(piece.texts)
        return batch

    async def _send(self, batch: list[_Piece]) -> None:
        try:
            texts = [t for piece in batch for t in piece.texts]
            try:
                vectors = await self.batcher.triton.infer(self.model, texts)
            except Exception as exc:  # every job of the batch hears it
                for piece in batch:
                    if not piece.answer.done():
                        piece.answer.set_exception(exc)
                return
            self.batcher.requests += 1
            start = 0
            for piece in batch:
                end = start + len(piece.texts)
                if not piece.answer.done():
                    piece.answer.set_result(vectors[start:end])
                start = end
        finally:
            self.slots.release()


class InferenceBatcher:
    """Embeddings of many jobs' texts, sent to Triton in shared requests."""

    def __init__(
        self,
        triton: TritonRunner,
        window_s: float = 0.005,
        max_batch: int = 64,
        in_flight: int = 4,
        piece: int = 16,
    ) -> None:
        if piece > max_batch:
            raise ValueError("a piece must fit in a batch")
        self.triton = triton
        self.piece = piece
        self.window_s = window_s
        self.max_batch = max_batch
        self.in_flight = in_flight
        self.requests = 0  # Triton requests sent (for tests and the bench)
        self.sending: set[asyncio.Task[None]] = set()
        self._queues: dict[tuple[str, str], _Queue] = {}

    async def embed(
        self,
        model: str,
        texts: list[str],
        priority: str = "normal",
        progress: Callable[[float], Awaitable[None]] | None = None,
    ) -> dict[str, Any]:
        """`texts`' embeddings (one vector each) and their dimension, as `TritonRunner.embed`."""
        queue = self._queues.get((model, priority))
        if queue is None:
            queue = self._queues[(model, priority)] = _Queue(self, model)
        pieces = [_Piece(texts[i : i + self.piece]) for i in range(0, len(texts), self.piece)]
        for piece in pieces:
            queue.put(piece)
        vectors: Vectors = []
        try:
            for piece in pieces:
                vectors += await piece.answer
                # One piece: its only step would be the completion itself, said anyway.
                if progress is not None and len(pieces) > 1:
                    await progress(len(vectors) / len(texts))
        finally:
            for piece in pieces:  # given up (timeout, cancel): leave the batches it waits in
                if not piece.answer.done():
                    piece.answer.cancel()
        return {"model": model, "dimension": len(vectors[0]), "embeddings": vectors}

    async def close(self) -> None:
        for queue in self._queues.values():
            queue.task.cancel()
        await asyncio.gather(
            *(q.task for q in self._queues.values()), *self.sending, return_exceptions=True
        )
        self._queues.clear()
        await self.triton.close()
