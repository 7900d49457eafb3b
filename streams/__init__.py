"""Faust agents: the single writer per user (partition) that decides and sequences."""
