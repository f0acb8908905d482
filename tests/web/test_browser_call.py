"""A real browser (headless Chromium over CDP) opens the call page, hears the agent, hangs up."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent_studio.media.embedded.webrtc.fastpath.receive import QUIET_FLOOR
from tests.fakes.openai_server import FakeOpenAI
from tests.fixtures.factories import create_agent
from tests.fixtures.live_server import LiveServer
from tests.web.cdp import Page, chromium_path, open_browser

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
GREETING = "Hello from Agent Studio, how can I help?"

# An AnalyserNode on the remote stream: getStats() audio levels read 0 in headless Chromium.
MEASURE = """(() => {
  const ctx = new AudioContext();
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 2048;
  ctx.createMediaStreamSource(document.getElementById("remote").srcObject).connect(analyser);
  const buf = new Float32Array(analyser.fftSize);
  window.heard = { peak: 0, firstAt: null, state: ctx.state };
  setInterval(() => {
    analyser.getFloatTimeDomainData(buf);
    let sum = 0;
    for (const v of buf) sum += v * v;
    const rms = Math.sqrt(sum / buf.length);
    window.heard.peak = Math.max(window.heard.peak, rms);
    window.heard.state = ctx.state;
    if (rms > 0.01 && window.heard.firstAt === null) {
      window.heard.firstAt = Math.round(performance.now());
    }
  }, 20);
  return ctx.state;
})()"""


@pytest.fixture
def chromium() -> str:
    path = chromium_path()
    if path is None or shutil.which("espeak-ng") is None or shutil.which("sox") is None:
        if os.environ.get("CI"):
            pytest.fail(
                "chromium, espeak-ng and sox are required in CI (scripts/system-packages.txt)"
            )
        pytest.skip("needs chromium, espeak-ng and sox")
    return path


def caller_voice(tmp_path: Path) -> Path:
    """48 kHz mono: 4 s of silence (the greeting is not interrupted), then a short sentence."""
    raw, wav = tmp_path / "espeak.wav", tmp_path / "caller.wav"
    subprocess.run(["espeak-ng", "-w", str(raw), "I would like to order a pizza."], check=True)
    subprocess.run(
        ["sox", str(raw), "-r", "48000", "-c", "1", str(wav), "pad", "4", "0"], check=True
    )
    return wav


async def until(
    check: Callable[[], Awaitable[Any]], what: str, page: Page, timeout: float = 15.0
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            state = await page.evaluate("JSON.stringify(window.callPage)")
            pytest.fail(f"timed out waiting for {what}; page: {state}; console: {page.console}")
        await asyncio.sleep(0.05)


async def test_a_browser_calls_an_agent_from_the_call_page(
    chromium: str, live_server: LiveServer, live_client: httpx.AsyncClient, tmp_path: Path
) -> None:
    await call_from_the_page(live_server, live_client, tmp_path, ptime_ms=20)


async def test_the_browser_sends_the_packets_the_answer_asks_for(
    chromium: str, live_server: LiveServer, live_client: httpx.AsyncClient, tmp_path: Path
) -> None:
    """AGENT_STUDIO_WEBRTC_PTIME_MS=60: Chromium follows the answer's a=ptime:60."""
    await call_from_the_page(live_server, live_client, tmp_path, ptime_ms=60)


async def call_from_the_page(
    live_server: LiveServer, live_client: httpx.AsyncClient, tmp_path: Path, ptime_ms: int
) -> None:
    webrtc = live_server.app.state.context.webrtc
    webrtc.options = dataclasses.replace(webrtc.options, ptime_ms=ptime_ms)
    async with FakeOpenAI() as fake:
        llm = {"provider": "openai-compatible", "base_url": fake.base_url, "model": "fake"}
        await create_agent(live_client, "web-agent", llm=llm, greeting=GREETING)
        response = await live_client.post(
            "/api/v1/calls/test-agent", json={"agent_name": "web-agent"}
        )
        assert response.status_code == 201, response.text
        call = response.json()
        call_id = call["call_id"]

        async with open_browser(caller_voice(tmp_path)) as page:
            started = time.monotonic()
            await page.send(
                "Page.navigate", url=f"{live_server.base_url}/call/{call_id}#token={call['token']}"
            )

            async def status_text() -> Any:
                return (
                    await page.evaluate("document.getElementById('status')?.textContent")
                    == "active"
                )

            await until(status_text, "the page to show active", page)
            active_after = time.monotonic() - started
            # The token left the address bar.
            assert "token" not in await page.evaluate("location.href")
            await until(
                lambda: page.evaluate("window.callPage.timings.track"), "the remote track", page
            )
            assert await page.evaluate(MEASURE) == "running"

            async def greeted() -> Any:
                return GREETING in await page.evaluate(
                    "document.getElementById('transcript').textContent"
                )

            await until(greeted, "the greeting in the transcript", page)
            await until(lambda: page.evaluate("window.heard.peak > 0.02"), "audible audio", page)
            session = webrtc.get(uuid.UUID(call_id))
            assert session is not None and session.inline_decoding is not None
            assert session.inline_decoding.packet_ms == ptime_ms
            # The answer's usedtx=1: in the caller's silence Chromium sends (nearly) nothing,
            # and the server hears that silence made up frame by frame.
            lean = session.lean_receiver
            assert lean is not None

            async def quiet() -> bool:
                return lean.quiet_seconds >= QUIET_FLOOR - 0.01  # made for a pause, at least

            await until(quiet, "the caller's pause heard as silence while it sent nothing", page)
            print(f"\ncaller packets {lean.packets}, silence made {lean.quiet_seconds:.2f} s")
            heard = await page.evaluate("window.heard")
            timings = await page.evaluate("window.callPage.timings")
            if ptime_ms == 20:
                await page.screenshot(ARTIFACTS / "call-page.png")

            await page.evaluate("document.getElementById('hangup').click()")

            async def ended() -> Any:
                return (
                    await page.evaluate("document.getElementById('status')?.textContent") == "ended"
                )

            await until(ended, "the page to show the end", page)
            detail = await page.evaluate("document.getElementById('detail').textContent")
            assert detail == "Call completed (user_hangup)"
            if ptime_ms == 20:
                await page.screenshot(ARTIFACTS / "call-page-ended.png")

        final = (await live_client.get(f"/api/v1/calls/{call_id}")).json()
        assert (final["status"], final["end_reason"]) == ("completed", "user_hangup")
        print(
            f"\ncall page timings (ms from navigation): {timings}, first audio {heard['firstAt']},"
            f" peak rms {heard['peak']:.3f}; active seen by the test after {active_after:.2f} s"
        )
