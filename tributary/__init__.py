"""Tributary's base: what every part shares (settings, logging, Kafka and Redis clients, the
limit math, backoff, telemetry); it imports nothing above it (the entry points are `cli/`)."""
