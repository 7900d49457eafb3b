"""The executors' side effects, run after the decision to run them commits: Docker
containers, Triton inference (batched across users), the GPU pool's slots, and the engine
watch that reports what the engine did on its own."""
