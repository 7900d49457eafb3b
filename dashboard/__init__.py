"""The admin dashboard, a process of its own beside the data flow: it reads the DLQ, the
consumer groups, the status store, ClickHouse (through the projector) and every process's
health, and writes only what an operator asks: dead letters sent back to their origin topic,
or purged. `dashboard.views` holds its rules (pure), `dashboard.sources` its I/O,
`dashboard.app` its pages."""
