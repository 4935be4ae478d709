"""Letting go of big structures without stopping the event loop."""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Any

__all__ = ("release_gradually", "return_free_memory")

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


def return_free_memory() -> None:
    """Hand the heap pages freed since back to the system (glibc's malloc_trim; nothing elsewhere).

    A replaced index frees hundreds of MB, much of it in pieces glibc keeps for reuse rather than returning:
    at 930k passages a serving process that loaded a second index and let the first go stayed 60+ MB above
    one that loaded it once. A few ms, without the GIL (ctypes releases it).
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass
