"""Tributary: process wiring shared by every part (settings, logging, the CLI)."""
