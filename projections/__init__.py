"""Kafka → ClickHouse (exactly once) and Kafka → push. Read models only; no decisions."""
