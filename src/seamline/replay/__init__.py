"""Guarded replay (issue #13 item 6): re-send a recorded request through the sidecar's own proxy listener."""
