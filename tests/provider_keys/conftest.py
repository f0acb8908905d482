"""Provider key fixtures: no provider env var leaks in from the machine running the tests."""

from __future__ import annotations

import pytest

from agent_studio.provider_keys.catalog import all_providers


@pytest.fixture(autouse=True)
def _no_provider_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for info in all_providers():
        if info.env_var:
            monkeypatch.delenv(info.env_var, raising=False)
