"""Helpers several test packages share (real parts only: servers, databases)."""
