"""Which server this process is: a stable id per data dir, so a restarted server knows the calls
the dead process ran, and whether it alone uses that data dir."""

from __future__ import annotations

import fcntl
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from agent_studio.core.datadir import private_data_dir

_ID_FILE = "host-id"
_LOCK_FILE = "host.lock"


@dataclass
class ServerIdentity:
    """`id` marks the calls this process runs. `exclusive`: no other live server holds the same
    data dir (a lock held for the process's life, freed by the kernel when it dies), so the
    calls still marked with `id` at start were a dead process's."""

    id: str
    exclusive: bool
    _lock_fd: int | None = None

    @classmethod
    def claim(cls, data_dir: Path) -> ServerIdentity:
        private_data_dir(data_dir)
        fd = os.open(data_dir / _LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)  # another server runs on this data dir: an id of our own, no clean-up
            return cls(id=uuid.uuid4().hex, exclusive=False)
        path = data_dir / _ID_FILE
        if not path.exists():
            path.write_text(uuid.uuid4().hex)
        return cls(id=path.read_text().strip()[:64], exclusive=True, _lock_fd=fd)

    def release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the file frees the lock
            self._lock_fd = None
