"""Channels: one adapter per outside system behind the port in ``port.py``."""
