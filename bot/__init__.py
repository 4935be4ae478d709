"""Newsdesk on Discord: a thin layer that routes commands to the engine (index/) and lays out its answers."""
