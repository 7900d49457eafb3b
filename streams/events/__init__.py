"""The event pipeline: ingest → counter agent (dedup, per-user sequence) → counted."""
