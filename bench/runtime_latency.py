"""The platform's own share of voice-to-voice latency, with fixed-latency scripted providers.

A caller's recorded sentence (espeak-ng) goes through a 20 ms transport clock into a real
session (silero VAD, the runtime, the recorder writing to SQLite); the STT, the model and the
TTS are in-process fakes that take exactly a known time. Per turn:

    voice-to-voice = first reply audio frame pulled by the transport - end of the caller's speech
    platform share = voice-to-voice - VAD silence - STT - LLM time to first token - TTS first byte

The share is what the runtime, livekit-agents, the VAD's own detection and the audio path add.
`vad slop` is the part of it between the end of speech and the VAD declaring it (plus its
configured silence). Text mode measures the same round trip without audio (model time removed).

    .venv/bin/python bench/runtime_latency.py [--turns 15] [--turn-detection vad|model]
                                              [--baseline OTHER/src] [--tiny]

`--tiny`: one turn (the same code paths; checks the benchmark runs, its figures mean nothing).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from harness import SRC, TINY_HELP, Figures  # noqa: E402

STT_DELAY, LLM_TTFT, TTS_TTFB = 0.100, 0.150, 0.080
VAD_SILENCE, ENDPOINTING = 0.30, 0.10  # endpointing below the VAD silence: the VAD decides
IN_RATE, OUT_RATE, FRAME = 48000, 48000, 0.020
REPLY = "It is sunny today."
API_KEY = "as_bench-key-0123456789abcdefghij"


def fakes() -> tuple[Any, Any, Any]:
    """Classes of an STT, an LLM and a TTS that take exactly the configured time."""
    from livekit.agents import APIConnectOptions, llm, stt, tts, utils

    class FixedSTT(stt.STT):
        def __init__(self) -> None:
            super().__init__(
                capabilities=stt.STTCapabilities(streaming=False, interim_results=False)
            )

        async def _recognize_impl(
            self, buffer: Any, *, language: Any = None, conn_options: APIConnectOptions
        ) -> stt.SpeechEvent:
            await asyncio.sleep(STT_DELAY)
            return stt.SpeechEvent(
                type=stt.SpeechEventType.FINAL_TRANSCRIPT,
                alternatives=[stt.SpeechData(language="en", text="what is the weather like today")],
            )

    class FixedStream(llm.LLMStream):
        async def _run(self) -> None:
            await asyncio.sleep(LLM_TTFT)
            self._event_ch.send_nowait(
                llm.ChatChunk(
                    id=utils.shortuuid(), delta=llm.ChoiceDelta(role="assistant", content=REPLY)
                )
            )

    class FixedLLM(llm.LLM):
        def chat(self, *, chat_ctx: Any, tools: Any = None, **kw: Any) -> Any:
            options = kw.get("conn_options", APIConnectOptions())
            return FixedStream(self, chat_ctx=chat_ctx, tools=tools or [], conn_options=options)

    class FixedChunks(tts.ChunkedStream):
        async def _run(self, output_emitter: tts.AudioEmitter) -> None:
            rid = utils.shortuuid()
            output_emitter.initialize(
                request_id=rid, sample_rate=24000, num_channels=1, mime_type="audio/pcm"
            )
            await asyncio.sleep(TTS_TTFB)
            t = np.arange(int(24000 * 0.4)) / 24000
            output_emitter.push((np.sin(2 * np.pi * 220 * t) * 8000).astype(np.int16).tobytes())
            output_emitter.flush()

    class FixedTTS(tts.TTS):
        def __init__(self) -> None:
            super().__init__(
                capabilities=tts.TTSCapabilities(streaming=False), sample_rate=24000, num_channels=1
            )

        def synthesize(
            self, text: str, *, conn_options: APIConnectOptions = APIConnectOptions()
        ) -> Any:
            return FixedChunks(tts=self, input_text=text, conn_options=conn_options)

    return FixedSTT, FixedLLM, FixedTTS


def caller_sentence(tmp: Path) -> tuple[bytes, int]:
    """espeak-ng's sentence as a WebRTC peer sends it (48 kHz), and the byte offset where its
    speech ends (the last sample louder than -40 dBFS)."""
    path = tmp / "caller.wav"
    subprocess.run(["espeak-ng", "-w", str(path), "Is it sunny today?"], check=True)
    with wave.open(str(path)) as w:
        rate, pcm = w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    times = np.arange(int(len(pcm) * IN_RATE / rate)) / IN_RATE
    pcm = np.interp(times, np.arange(len(pcm)) / rate, pcm).astype(np.int16)
    loud = np.nonzero(np.abs(pcm) > 300)[0]
    return pcm[: loud[-1] + 1].tobytes(), (int(loud[-1]) + 1) * 2


async def setup_call(tmp: Path, fixed: tuple[Any, Any, Any]) -> tuple[Any, Any, Any]:
    """An in-process app on SQLite, an agent whose providers are the fakes, and a new call."""
    import httpx
    from asgi_lifespan import LifespanManager
    from pydantic import SecretStr

    from agent_studio.app import create_app
    from agent_studio.config import Settings
    from agent_studio.runtime import providers

    fixed_stt, fixed_llm, fixed_tts = fixed
    providers.register("stt", "deepgram")(lambda spec, key, ctx: fixed_stt())
    providers.register("llm", "openai-compatible")(lambda spec, key, ctx: fixed_llm())
    providers.register("tts", "cartesia")(lambda spec, key, ctx: fixed_tts())
    settings = Settings(_env_file=None, data_dir=tmp, api_key=SecretStr(API_KEY))  # type: ignore[call-arg]
    app = create_app(settings)
    manager = LifespanManager(app)
    await manager.__aenter__()
    http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://bench",
        headers={"Authorization": f"Bearer {API_KEY}"},
    )
    for kind, name in (("stt", "deepgram"), ("tts", "cartesia")):
        key = {"provider_type": kind, "provider_name": name, "api_key": "bench-key-0123456789"}
        assert (await http.post("/api/v1/provider-keys", json=key)).status_code == 201
    agent = {
        "name": "bench-agent",
        "instructions": "Answer briefly.",
        "stt": {"provider": "deepgram"},
        "tts": {"provider": "cartesia"},
        "llm": {"provider": "openai-compatible", "base_url": "http://127.0.0.1:9/v1"},
    }
    assert (await http.post("/api/v1/agents", json=agent)).status_code == 201
    return app, manager, http


async def new_call(http: Any) -> Any:
    import uuid

    r = await http.post("/api/v1/calls/test-agent", json={"agent_name": "bench-agent"})
    assert r.status_code == 201, r.text
    return uuid.UUID(r.json()["call_id"])


def deps_of(app: Any, **extra: Any) -> Any:
    from agent_studio.runtime import WEBHOOK_SECRET_PURPOSE, RuntimeDeps, database_key_lookup

    ctx = app.state.context
    return RuntimeDeps(
        lifecycle=ctx.lifecycle,
        key_lookup=database_key_lookup(ctx.db, ctx.secrets),
        webhook_secret=ctx.secrets.derive(WEBHOOK_SECRET_PURPOSE),
        running_calls=ctx.running_calls,
        **extra,
    )


async def voice_turns(
    app: Any, http: Any, tmp: Path, turns: int, detection: str
) -> dict[str, list[float]]:
    from livekit.plugins import silero

    from agent_studio.calls.states import EndReason
    from agent_studio.runtime import CallRunner, RuntimeOptions
    from agent_studio.runtime.audio import TransportAudioInput, TransportAudioOutput

    speech, speech_end = caller_sentence(tmp)
    vad = silero.VAD.load(min_silence_duration=VAD_SILENCE)
    first_frames: list[float] = []
    audio_in = TransportAudioInput()
    audio_out = TransportAudioOutput(sample_rate=OUT_RATE, on_first_frame=first_frames.append)
    detect: Any = detection
    options = RuntimeOptions(turn_detection=detect, min_endpointing_delay=ENDPOINTING)
    deps = deps_of(app, vad=vad)
    runner = CallRunner(
        await new_call(http), deps, audio_input=audio_in, audio_output=audio_out, options=options
    )
    caller = bytearray()
    marks: dict[str, float] = {}
    pushed = {"bytes": 0, "end": -1}

    async def clock() -> None:
        loop = asyncio.get_running_loop()
        in_bytes, out_samples = int(IN_RATE * FRAME) * 2, int(OUT_RATE * FRAME)
        deadline = loop.time()
        while True:
            chunk = bytes(caller[:in_bytes]).ljust(in_bytes, b"\0")
            del caller[:in_bytes]
            audio_in.push_frame(chunk, IN_RATE)
            pushed["bytes"] += in_bytes
            if pushed["end"] >= 0 and pushed["bytes"] >= pushed["end"]:
                marks["speech_end"], pushed["end"] = time.perf_counter(), -1
            audio_out.read_frame(out_samples)
            deadline += FRAME
            await asyncio.sleep(max(0.0, deadline - loop.time()))

    transport = asyncio.create_task(clock())
    await runner.start()
    assert runner.session is not None
    runner.session.on(
        "user_state_changed",
        lambda ev: ev.new_state == "listening" and marks.setdefault("vad_end", time.perf_counter()),
    )
    totals, shares, slops, pipeline = [], [], [], []
    for _ in range(turns + 1):  # the first turn warms up and is not counted
        marks.clear()
        pushed["end"] = pushed["bytes"] + len(caller) + speech_end
        caller += speech
        seen = len(first_frames)
        while len(first_frames) == seen or audio_out.queued_duration > 0:
            await asyncio.sleep(0.01)
        total = first_frames[seen] - marks["speech_end"]
        totals.append(total * 1000)
        share = total - VAD_SILENCE - STT_DELAY - LLM_TTFT - TTS_TTFB
        slop = marks.get("vad_end", marks["speech_end"]) - marks["speech_end"] - VAD_SILENCE
        shares.append(share * 1000)
        slops.append(slop * 1000)
        pipeline.append((share - slop) * 1000)
        await asyncio.sleep(0.2)
    await runner.end(EndReason.USER_HANGUP)
    transport.cancel()
    metrics = (await http.get(f"/api/v1/calls/{runner.call_id}")).json()["metrics"]
    return {
        "voice-to-voice": totals[1:],
        "platform share": shares[1:],
        "  VAD detection (beyond its silence)": slops[1:],
        "  pipeline (VAD end -> first frame)": pipeline[1:],
        "recorded e2e_latency_ms (call mean)": [float(metrics["e2e_latency_ms"] or 0)],
    }


async def text_turns(app: Any, http: Any, turns: int) -> dict[str, list[float]]:
    from agent_studio.runtime import CallRunner, RuntimeOptions

    runner = CallRunner(await new_call(http), deps_of(app), options=RuntimeOptions())
    await runner.start()
    samples = []
    for _ in range(turns + 1):
        start = time.perf_counter()
        await runner.send_text("What is the weather like today?")
        samples.append((time.perf_counter() - start - LLM_TTFT) * 1000)
    await runner.aclose()
    return {"text mode: round trip minus model": samples[1:]}


async def measure(turns: int, detection: str) -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory(prefix="agent-studio-bench-") as tmp:
        app, manager, http = await setup_call(Path(tmp), fakes())
        try:
            results = await voice_turns(app, http, Path(tmp), turns, detection)
            results.update(await text_turns(app, http, turns * 2))
        finally:
            await http.aclose()
            await manager.__aexit__(None, None, None)
    return results


def builds(baseline: Path | None) -> list[tuple[str, Path]]:
    return [("this build", SRC)] + ([("baseline", baseline.resolve())] if baseline else [])


def run_worker(script: str, src: Path, arguments: list[str]) -> Any:
    """Run `script --worker ...` with `src` first on the path; its last line, parsed as JSON."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    command = [sys.executable, script, "--worker", *arguments]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"benchmark failed for {src}:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--turns", type=int, help="turns measured (default 15; --tiny: 1)")
    p.add_argument("--baseline", type=Path, help="another build's src dir to compare against")
    p.add_argument("--turn-detection", choices=["vad", "model"], default="vad")
    p.add_argument("--tiny", action="store_true", help=TINY_HELP)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    args.turns = args.turns or (1 if args.tiny else 15)
    if args.worker:
        print(json.dumps(asyncio.run(measure(args.turns, args.turn_detection))))
        return
    print(
        f"fixed providers: STT {STT_DELAY * 1000:.0f} ms, LLM TTFT {LLM_TTFT * 1000:.0f} ms, "
        f"TTS TTFB {TTS_TTFB * 1000:.0f} ms; VAD silence {VAD_SILENCE * 1000:.0f} ms"
    )
    arguments = ["--turns", str(args.turns), "--turn-detection", args.turn_detection]
    for label, src in builds(args.baseline):
        print(f"\n{label} ({src})")
        for name, samples in run_worker(__file__, src, arguments).items():
            print("  " + Figures(name, samples).line())


if __name__ == "__main__":
    main()
