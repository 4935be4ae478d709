"""Letting go of big structures without stopping the event loop."""

from __future__ import annotations

from typing import Any

__all__ = ("release_gradually",)

# Each slice frees this many items in one C call: well under a millisecond.
_SLICE = 2_000


def release_gradually(*containers: Any) -> None:
    """Empty lists and dicts a slice at a time (call it in a worker thread).

    Freed whole, a million small objects are one C call that holds the GIL for tens or hundreds of ms,
    whichever thread drops the last reference: in the bot, that is the event loop standing still.
    """
    for container in containers:
        if isinstance(container, list):
            while container:
                del container[-_SLICE:]
        elif isinstance(container, dict):
            while container:
                for _ in range(min(_SLICE, len(container))):
                    container.popitem()
