"""Starting the real services (Kafka, Redis, ClickHouse) and Tributary's own processes."""
