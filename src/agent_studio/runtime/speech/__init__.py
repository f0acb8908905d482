"""Offline speech engines for the voice session: faster-whisper STT, espeak-ng and Piper TTS."""

from agent_studio.runtime.speech.tts import LocalTTS
from agent_studio.runtime.speech.whisper import LocalWhisperSTT

__all__ = ["LocalTTS", "LocalWhisperSTT"]
