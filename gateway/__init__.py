"""HTTP ingestion: every accepted request becomes one event on a user-keyed topic."""
