"""The stream worker: the agents that own each user's partition and decide in order.

- `events/`: the event pipeline, ingest → counter agent → counted (`counter.py`, with its
  pure rule `sequencing.py`).
- `jobs/`: the job pipeline, commands → command agent → work tiers → executors → results
  (`commands.py`, `executor.py`, their pure rules `admission.py`, `container_rules.py`,
  `retries.py`, `emit.py`), the retry scheduler, and `runners/`: the side effects (Docker,
  Triton, the GPU pool) run after a decision commits.
- `runtime/`: what every deciding agent runs on and knows nothing of events or jobs: the
  exactly-once loop (`transactional.py`), what it runs (`processor.py`) and how one record
  goes through it (`decide.py`, `oversize.py`), restoring a partition (`recovery.py`), its
  tables (`state.py`) and their stores on disk (`stores.py`), and what a processor returns
  (`outputs.py`).
- `app.py` wires them into one worker process (`worker.py`), with its health pages and
  metrics; `dlq_admin.py` is the operators' DLQ tooling.
"""
