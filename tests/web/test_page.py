"""The call page and its assets: served by us, no auth, nothing from elsewhere."""

from __future__ import annotations

import re
import uuid

import httpx


async def test_the_page_is_served_without_auth(anon_client: httpx.AsyncClient) -> None:
    response = await anon_client.get(f"/call/{uuid.uuid4()}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "connect-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["referrer-policy"] == "no-referrer"
    html = response.text
    assert '<audio id="remote" autoplay>' in html
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets == ["/static/call.css", "/static/call.js"]
    for asset in assets:
        served = await anon_client.get(asset)
        assert served.status_code == 200, asset
        # No CDN, font or script from anywhere else.
        assert not re.search(r"https?://", served.text), asset
    js = (await anon_client.get("/static/call.js")).text
    assert "Authorization" in js and "/events" in js and "/whip" in js
    assert (await anon_client.get("/call/not-a-uuid")).status_code == 422


async def test_only_the_page_assets_are_served(anon_client: httpx.AsyncClient) -> None:
    for name in ("call.html", "nope.js", "..%2F__init__.py", "%2e%2e%2fpages.py"):
        response = await anon_client.get(f"/static/{name}")
        assert response.status_code == 404, name
    # The 404 does not echo what was asked for (a reflected string is an injection vector).
    response = await anon_client.get("/static/%3Cscript%3Ealert(1)%3C%2Fscript%3E.js")
    assert response.status_code == 404
    assert "script" not in response.text
