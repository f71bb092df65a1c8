"""The checkout the tests run from, for tests that read files of the source tree (the
installed product finds its own files through media_worker.lab.layout)."""

from __future__ import annotations

from pathlib import Path

SOURCE_TREE = Path(__file__).resolve().parents[2]
