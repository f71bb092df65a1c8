"""Process-wide settings for a worker process (not applied when the worker is a library)."""

from __future__ import annotations

import gc

# Every RTP packet allocates a few small containers; the default collector threshold (700)
# runs a young-generation pass many times a call per second and, with hundreds of calls,
# full passes over the whole heap show up as multi-millisecond send jitter.
GC_THRESHOLDS = (50_000, 20, 50)


def tune_for_media() -> None:
    """Collect less often, and never scan what was loaded at start-up (prompts, code)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
