"""Timestamps: float epoch seconds, strictly increasing within a process.

Link and attribute creation order is read from their `created` stamps, so two
stamps taken back to back must never be equal.
"""
import time

_last = 0.0


def now() -> float:
    global _last
    t = time.time()
    if t <= _last:
        t = _last + 1e-6
    _last = t
    return t
