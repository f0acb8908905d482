"""Call page fixtures: a real server on 127.0.0.1 for the browser."""

from __future__ import annotations

from tests.fixtures.live_server import live_client, live_server  # noqa: F401
