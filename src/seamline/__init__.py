"""Seamline: the observability sidecar for integration handoffs."""

__version__ = "0.1.0"
