"""The data dir holds the secret key and the SQLite database: only its owner may read it."""

from __future__ import annotations

import stat
from pathlib import Path

from asgi_lifespan import LifespanManager

from agent_studio.app import create_app
from tests.conftest import make_settings


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_a_new_data_dir_is_private(tmp_path: Path) -> None:
    data_dir = tmp_path / "fresh" / "data"
    settings = make_settings(data_dir, None, secret_key=None)
    async with LifespanManager(create_app(settings), startup_timeout=60):
        pass
    assert _mode(data_dir) == 0o700
    assert (data_dir / "agent-studio.db").exists()


async def test_an_existing_data_dir_open_to_others_is_closed(tmp_path: Path) -> None:
    data_dir = tmp_path / "shared"
    data_dir.mkdir(mode=0o755)
    data_dir.chmod(0o755)
    settings = make_settings(data_dir, None, secret_key=None)
    async with LifespanManager(create_app(settings), startup_timeout=60):
        pass
    assert _mode(data_dir) == 0o700
