"""A tiny Chrome DevTools Protocol client: launch headless Chromium on loopback, drive one page."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM = "/usr/bin/chromium"


def chromium_path() -> str | None:
    return CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")


def chromium_flags(user_data_dir: Path, fake_audio: Path) -> list[str]:
    """The flags of docs testing-media.md: every packet on 127.0.0.1, fake mic, autoplay."""
    return [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={user_data_dir}",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={fake_audio}",
        "--webrtc-ip-handling-policy=default_public_interface_only",
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
        "--autoplay-policy=no-user-gesture-required",
        "--remote-debugging-port=0",
    ]


class Page:
    """One tab, attached with a flat session over the browser's DevTools websocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.session_id: str | None = None
        self.console: list[str] = []
        self._reader = asyncio.create_task(self._read(), name="cdp-reader")

    async def _read(self) -> None:
        async for message in self._ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(message.data)
            future = self._pending.pop(data.get("id", -1), None)
            if future is not None and not future.done():
                future.set_result(data)
            elif data.get("method") == "Runtime.consoleAPICalled":
                args = data["params"]["args"]
                self.console.append(
                    " ".join(str(a.get("value", a.get("description"))) for a in args)
                )
            elif data.get("method") == "Runtime.exceptionThrown":
                self.console.append(str(data["params"]["exceptionDetails"]))
        for future in self._pending.values():
            future.cancel()

    async def send(self, method: str, session: bool = True, **params: Any) -> dict[str, Any]:
        message_id = next(self._ids)
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params}
        if session and self.session_id is not None:
            message["sessionId"] = self.session_id
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[message_id] = future
        await self._ws.send_str(json.dumps(message))
        reply = await asyncio.wait_for(future, timeout=15)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    async def evaluate(self, expression: str) -> Any:
        result = await self.send(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"page error: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def screenshot(self, path: Path) -> None:
        shot = await self.send("Page.captureScreenshot", format="png")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


async def _devtools_port(user_data_dir: Path, process: asyncio.subprocess.Process) -> str:
    marker = user_data_dir / "DevToolsActivePort"
    async with asyncio.timeout(15):
        while not (marker.exists() and len(marker.read_text().splitlines()) >= 2):
            if process.returncode is not None:
                raise RuntimeError(f"chromium exited with {process.returncode}")
            await asyncio.sleep(0.05)
    port, path = marker.read_text().splitlines()[:2]
    return f"ws://127.0.0.1:{port}{path}"


@contextlib.asynccontextmanager
async def open_browser(
    fake_audio: Path, width: int = 800, height: int = 900
) -> AsyncIterator[Page]:
    """Headless Chromium with a fresh profile and a blank tab; every process it started ends."""
    executable = chromium_path()
    assert executable is not None, "chromium is not installed"
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        user_data_dir = Path(profile)
        process = await asyncio.create_subprocess_exec(
            executable,
            *chromium_flags(user_data_dir, fake_audio),
            f"--window-size={width},{height}",
            "about:blank",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,  # its own process group: the zygote and helpers end with it
        )
        try:
            url = await _devtools_port(user_data_dir, process)
            async with aiohttp.ClientSession() as http, http.ws_connect(url, max_msg_size=0) as ws:
                page = Page(ws)
                try:
                    target = await page.send("Target.createTarget", url="about:blank")
                    attached = await page.send(
                        "Target.attachToTarget", targetId=target["targetId"], flatten=True
                    )
                    page.session_id = attached["sessionId"]
                    await page.send("Page.enable")
                    await page.send("Runtime.enable")
                    yield page
                finally:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(page.send("Browser.close", session=False), 5)
                    await page.close()
        finally:
            with contextlib.suppress(ProcessLookupError, asyncio.TimeoutError):
                await asyncio.wait_for(process.wait(), 5)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
