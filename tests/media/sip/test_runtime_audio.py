"""The runtime's audio adapters plug straight into a SIP call: speech out, echoed speech back in."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import numpy as np
import pytest

from tests.media.sip.conftest import MakeUa, Speech
from tests.media.sip.support import Sipp, rms

audio = pytest.importorskip("agent_studio.runtime.audio")
rtc = pytest.importorskip("livekit.rtc")
pytestmark = pytest.mark.timeout(60)


async def test_transport_adapters_carry_speech_through_an_echo_call(
    make_ua: MakeUa, tmp_path: Path, speech: Speech
) -> None:
    heard = audio.TransportAudioInput(sample_rate=16000, max_queued_frames=500)
    voice = audio.TransportAudioOutput(sample_rate=8000)
    sipp = Sipp("uas_answer.xml", tmp_path, args=["-rtp_echo", "-d", "2500"])
    ua, events = await make_ua(trunk=sipp.uri)
    async with sipp:
        call = await ua.dial(uuid.uuid4(), "+15550199", connect_timeout=10)
        call.attach_audio(heard, voice)
        await events.wait_for("answered")
        samples = np.frombuffer(speech.pcm, dtype="<i2")
        await voice.capture_frame(rtc.AudioFrame(speech.pcm, 8000, 1, len(samples)))
        voice.flush()
        await events.wait_for("ended")
        assert await sipp.wait() == 0, sipp.explain()
    heard.close()
    frames = []
    async with asyncio.timeout(5):
        async for frame in heard:
            frames.append(bytes(frame.data))
    assert sum(len(f) == 640 for f in frames) >= 100  # 20 ms at 16 kHz, resampled by the adapter
    assert sum(1 for f in frames if rms(f) > 500) >= 25, "the speech did not come back"
