"""The contract every part shares: event models, API models and the topic registry."""
