"""Opus through libopus: what the WebRTC bridge encodes and decodes with."""

from __future__ import annotations

import numpy as np
import pytest
from av import AudioFrame, CodecContext, Packet

from agent_studio.media.embedded.webrtc.audio import SourceTrack, silence_packet
from agent_studio.media.embedded.webrtc.opus import (
    LOW_DELAY,
    VOIP,
    OpusDecoder,
    OpusEncoder,
    OpusError,
)
from tests.fixtures.whip_client import ToneSource, dominant_frequency, rms


def tone_frames(hz: float, frames: int) -> list[bytes]:
    source = ToneSource(hz)
    return [source.read_frame(960) for _ in range(frames)]


APPLICATIONS = pytest.mark.parametrize("application", [VOIP, LOW_DELAY], ids=["voip", "low-delay"])


@APPLICATIONS
@pytest.mark.parametrize("rate", [8000, 16000, 24000, 48000])
def test_a_tone_survives_encoding_and_decoding_at_each_rate(rate: int, application: int) -> None:
    encoder, decoder = OpusEncoder(application=application), OpusDecoder(rate)
    pcm = b"".join(decoder.decode(encoder.encode(f)) for f in tone_frames(440, 50))
    assert len(pcm) == 2 * rate  # one second, 20 ms per packet
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)[rate // 2 :]
    assert rms(samples) > 5000
    assert abs(dominant_frequency(samples, rate) - 440) < 5


@APPLICATIONS
def test_ffmpeg_decodes_what_we_encode(application: int) -> None:
    """Another decoder than ours (libopus through FFmpeg, as aiortc and browsers use it)."""
    encoder = OpusEncoder(application=application)
    codec = CodecContext.create("libopus", "r")
    decoded: list[AudioFrame] = []
    for f in tone_frames(660, 50):
        decoded += codec.decode(Packet(encoder.encode(f)))  # type: ignore[arg-type]
    channels = len(decoded[0].layout.channels)  # packed s16: interleaved
    samples = np.concatenate([f.to_ndarray().reshape(-1, channels)[:, 0] for f in decoded[25:]])
    assert abs(dominant_frequency(samples.astype(np.float64), decoded[0].sample_rate) - 660) < 5


@APPLICATIONS
def test_the_shared_silence_packet_decodes_to_silence_after_speech(application: int) -> None:
    encoder, decoder = OpusEncoder(application=application), OpusDecoder(16000)
    for f in tone_frames(440, 10):
        decoder.decode(encoder.encode(f))
    silence = silence_packet(application=application)
    quiet = b"".join(decoder.decode(silence) for _ in range(25))
    assert rms(np.frombuffer(quiet, dtype="<i2")[1600:].astype(np.float64)) < 1
    assert len(silence) < 60  # a silent frame is a small packet, made once
    assert silence_packet(application=application) is silence


def test_a_synthesized_voice_is_coded_full_band_without_silk() -> None:
    """LOW_DELAY (the agent's voice): CELT-only packets (TOC configurations 16-31), where VOIP
    codes speech with SILK or hybrid ones (0-15)."""
    frames = tone_frames(440, 10)
    voip, low_delay = OpusEncoder(), OpusEncoder(application=LOW_DELAY)
    assert all(voip.encode(f)[0] >> 3 < 16 for f in frames)
    assert all(low_delay.encode(f)[0] >> 3 >= 16 for f in frames)
    with pytest.raises(ValueError, match="application"):
        OpusEncoder(application=2049)


def test_bad_input_is_an_opus_error_not_a_crash() -> None:
    with pytest.raises(ValueError, match="8000"):
        OpusDecoder(44100)
    with pytest.raises(OpusError, match="opus_decode"):
        OpusDecoder(16000).decode(b"\xff\xff\xff")  # code 3 packet with a bad frame count
    with pytest.raises(OpusError, match="opus_encode"):
        OpusEncoder().encode(bytes(1000))  # 500 samples: not an Opus frame size


async def test_the_track_sends_silence_as_is_and_encodes_speech() -> None:
    class Script:
        def __init__(self) -> None:
            self.frames = [bytes(1920), *tone_frames(440, 5), bytes(1920), *[bytes(1920)] * 4]

        def read_frame(self, samples: int) -> bytes:
            return self.frames.pop(0)

    track = SourceTrack(Script())
    packets = [await track.recv() for _ in range(11)]
    assert [p.pts for p in packets] == [960 * i for i in range(11)]
    payloads = [bytes(p) for p in packets]
    assert payloads[0] == silence_packet()
    assert all(p != silence_packet() for p in payloads[1:9])  # speech, then its encoded tail
    assert payloads[9:] == [silence_packet()] * 2
    track.stop()
