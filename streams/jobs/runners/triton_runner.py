"""Inference on Triton over HTTP (plain `tritonclient`): the inference executor's side effect.

Inputs go in batches of `batch_size`; after each batch the caller hears the progress.
Idempotent by nature (a retried job computes the same embeddings); the result is
keyed by job id downstream.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
from tritonclient.http.aio import InferenceServerClient, InferInput, InferRequestedOutput
from tritonclient.utils import InferenceServerException

from streams.jobs.runners.errors import RunnerError

TEXT_INPUT = "text"
EMBEDDING_OUTPUT = "embedding"
LOADING_S = 120.0  # how long a restarting Triton may say it does not know a served model


class TritonRunner:
    def __init__(self, url: str, batch_size: int = 16) -> None:
        self._url = url
        self._batch_size = batch_size
        self._client: InferenceServerClient | None = None
        self._served: set[str] = set()  # models Triton has answered for
        self._unknown_since: dict[str, float] = {}  # served models it says it does not know

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def embed(
        self,
        model: str,
        texts: list[str],
        progress: Callable[[float], Awaitable[None]] | None = None,
    ) -> dict[str, Any]:
        """Embeddings of `texts` (one vector each) and their dimension, `batch_size` texts
        per request (one job's texts on their own: the direct path the bench compares)."""
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self._batch_size):
            vectors += await self.infer(model, texts[start : start + self._batch_size])
            if progress is not None:
                await progress(len(vectors) / len(texts))
        return {"model": model, "dimension": len(vectors[0]), "embeddings": vectors}

    async def infer(self, model: str, texts: list[str]) -> list[list[float]]:
        """One Triton request: one embedding per text."""
        if self._client is None:
            self._client = InferenceServerClient(self._url)
        array = np.array([[t.encode()] for t in texts], dtype=np.object_)
        tensor = InferInput(TEXT_INPUT, list(array.shape), "BYTES")
        tensor.set_data_from_numpy(array)
        try:
            answer = await self._client.infer(
                model, [tensor], outputs=[InferRequestedOutput(EMBEDDING_OUTPUT)]
            )
        except InferenceServerException as exc:
            # A model it has served before, now unknown: Triton restarted and is loading it
            # (for LOADING_S at most: then the model is gone, and that is the job's error).
            loading = model in self._served and _unknown_model(exc)
            if loading:
                since = self._unknown_since.setdefault(model, time.monotonic())
                loading = time.monotonic() - since < LOADING_S
            raise RunnerError(
                f"triton: {exc.message()}",
                permanent=_permanent(exc) and not loading,
                unreachable=loading,
            ) from exc
        except OSError as exc:  # connection refused/reset: the server is down
            raise RunnerError(
                f"triton unreachable: {exc}", permanent=False, unreachable=True
            ) from exc
        self._served.add(model)
        self._unknown_since.pop(model, None)
        out = answer.as_numpy(EMBEDDING_OUTPUT)
        vectors: list[list[float]] = np.round(out.astype(float), 6).tolist()
        return vectors

    async def stats(self, model: str) -> dict[str, Any]:
        """Triton's statistics of `model` (`v2/models/<model>/stats`)."""
        if self._client is None:
            self._client = InferenceServerClient(self._url)
        answer: dict[str, Any] = await self._client.get_inference_statistics(model)
        return answer


def _permanent(exc: InferenceServerException) -> bool:
    """Unknown models and malformed requests won't succeed on retry; the rest may."""
    return str(exc.status() or "").startswith("4") or _unknown_model(exc)


def _unknown_model(exc: InferenceServerException) -> bool:
    text = (exc.message() or "").lower()
    return "unknown model" in text or "not found" in text
