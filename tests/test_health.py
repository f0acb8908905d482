"""Health endpoints and auth on the API surface."""

import httpx


async def test_healthz_and_readyz_need_no_key(anon_client: httpx.AsyncClient) -> None:
    assert (await anon_client.get("/healthz")).json() == {"status": "ok"}
    assert (await anon_client.get("/readyz")).json() == {"status": "ok"}
