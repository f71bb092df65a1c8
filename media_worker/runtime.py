"""Process-wide settings for a worker process (not applied when the worker is a library)."""

from __future__ import annotations

import gc
import resource

# Every RTP packet allocates a few small containers; the default collector threshold (700)
# runs a young-generation pass many times a call per second and, with hundreds of calls,
# full passes over the whole heap show up as multi-millisecond send jitter.
GC_THRESHOLDS = (50_000, 20, 50)


def tune_for_media() -> None:
    """Collect less often, and never scan what was loaded at start-up (prompts, code)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def raise_open_file_limit() -> int:
    """Lift the soft limit on open files to the hard one: each call holds two sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft
