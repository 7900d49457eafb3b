"""The job pipeline: commands → command agent → work tiers → executors → job and container
events; each agent's pure rules beside it, and its side effects in `runners/`."""
