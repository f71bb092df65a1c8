"""Loading the packet captures under tests/data."""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).parent.parent / "data"


def load_capture(name: str) -> list[bytes]:
    """Packets of a ``tests/data/rtp/*.hex`` capture: one hex packet a line, # comments."""
    lines = (DATA / "rtp" / name).read_text().splitlines()
    return [bytes.fromhex(line) for line in lines if line and not line.startswith("#")]
