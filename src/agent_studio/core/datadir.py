"""The data dir: made private (0700) before anything is written there, since it holds the
generated secret key and the SQLite database."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

log = logging.getLogger(__name__)

PRIVATE = 0o700


def private_data_dir(path: Path) -> Path:
    """Create `path` readable by its owner only; an existing one open to others is closed."""
    path.mkdir(mode=PRIVATE, parents=True, exist_ok=True)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        path.chmod(mode & ~0o077)
        log.info("closed the data dir to other users (it holds the secret key and database)")
    return path
