"""What the operator commands (``voicemail mailbox``) take from the worker's configuration
file (``--config FILE`` or $VOICEMAIL_CONFIG): the store's URL, and the change spool in
its data_dir, so that the worker hears of each change the command makes (lamps,
webhooks)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from media_worker.changes import ChangeForwarder, spool_dir
from media_worker.config import ConfigError, load_config
from storage import Storage
from storage.cli import ChangeSink

FLUSH_WAIT = 10.0  # seconds a command waits for its notices to reach the disk


def read_config(path: str) -> ChangeSink:
    """The storage URL and change forwarding of the worker configured in ``path``;
    ValueError (naming the problem) if it cannot be used."""
    try:
        config = load_config(Path(path))
    except ConfigError as exc:
        raise ValueError(f"configuration {path}: {exc}") from None
    data_dir = Path(config.data_dir)
    directory = spool_dir(data_dir)
    problem = None
    if not data_dir.is_dir():
        problem = f"{path}: data_dir {data_dir} does not exist (has no worker run here?)"
    else:
        try:
            _make_spool(directory, data_dir)
        except OSError as exc:
            problem = f"cannot create the change spool {directory}: {exc.strerror}"

    @contextlib.asynccontextmanager
    async def forward(store: Storage) -> AsyncIterator[None]:
        if problem is not None:
            _not_told(problem)
            yield
            return
        forwarder = ChangeForwarder(store, directory)
        forwarder.start()
        try:
            yield
        finally:
            await forwarder.stop(give_up_after=FLUSH_WAIT)
            if forwarder.pending:
                _not_told(f"could not write to the change spool {directory}")

    return ChangeSink(storage_url=config.storage.url, forward=forward)


def _not_told(problem: str) -> None:
    print(
        f"voicemail: {problem}: the worker is not told of this change "
        "(the message-waiting lamp and webhooks won't follow)",
        file=sys.stderr,
    )


def _make_spool(directory: Path, data_dir: Path) -> None:
    """Create the spool as the worker would: owned like data_dir, so that the worker can
    remove the notices an operator's command (often run as root) leaves there."""
    if directory.is_dir():
        return
    with contextlib.suppress(FileExistsError):
        directory.mkdir(mode=0o775)
        if os.geteuid() == 0:
            owner = data_dir.stat()
            os.chown(directory, owner.st_uid, owner.st_gid)
