"""Local, registry-free service management: every service is a process with a pid file."""
