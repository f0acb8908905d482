"""Operations test fixtures: a live server, the runtime's text-mode helpers, a scripted model."""

from __future__ import annotations

from tests.fixtures.live_server import live_client, live_server  # noqa: F401
from tests.runtime.conftest import context, deps, fake_llm  # noqa: F401
