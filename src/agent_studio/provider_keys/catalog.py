"""The providers the server supports for speech-to-text, the language model and text-to-speech."""

from __future__ import annotations

from dataclasses import dataclass

PROVIDER_TYPES: tuple[str, ...] = ("stt", "llm", "tts")

OFFLINE_DEFAULTS: dict[str, str] = {"stt": "local-whisper", "tts": "local"}
"""What an agent's STT and TTS use when neither the agent nor a default key names a provider."""

LLM_ENV_FALLBACK = "openai"
"""With no LLM configured and no default LLM key, `OPENAI_API_KEY` alone makes the LLM OpenAI."""


@dataclass(frozen=True, slots=True)
class ProviderInfo:
    """One provider of one type, and what it needs before a call can use it.

    `requires_key`: a call fails fast without a key. `accepts_key`: a provider key may be stored
    for it (false for the offline providers, which take none). `requires_base_url`: the provider
    is any server speaking the OpenAI API, so it needs that server's URL; only such providers
    accept a `base_url`, so a stored key is never sent to a URL other than its own.
    """

    provider_type: str
    name: str
    display_name: str
    env_var: str | None
    requires_key: bool = True
    accepts_key: bool = True
    offline: bool = False
    requires_base_url: bool = False

    def as_dict(self) -> dict[str, object]:
        return {
            "provider_type": self.provider_type,
            "provider_name": self.name,
            "display_name": self.display_name,
            "requires_key": self.requires_key,
            "accepts_key": self.accepts_key,
            "requires_base_url": self.requires_base_url,
            "offline": self.offline,
            "env_var": self.env_var,
        }


def _cloud(provider_type: str, name: str, display_name: str, env_var: str) -> ProviderInfo:
    return ProviderInfo(provider_type, name, display_name, env_var)


def _offline(provider_type: str, name: str, display_name: str) -> ProviderInfo:
    return ProviderInfo(
        provider_type, name, display_name, None, requires_key=False, accepts_key=False, offline=True
    )


def _compatible(provider_type: str) -> ProviderInfo:
    """Any server speaking the OpenAI API for this type: Ollama, vLLM, LM Studio, Speaches, ...
    The key is optional, the server's URL is not. No env var: a key meant for one server must
    not be sent to another."""
    return ProviderInfo(
        provider_type,
        "openai-compatible",
        "OpenAI-compatible server",
        None,
        requires_key=False,
        requires_base_url=True,
    )


_CATALOG: tuple[ProviderInfo, ...] = (
    _cloud("llm", "openai", "OpenAI", "OPENAI_API_KEY"),
    _cloud("llm", "anthropic", "Anthropic", "ANTHROPIC_API_KEY"),
    _cloud("llm", "groq", "Groq", "GROQ_API_KEY"),
    _cloud("llm", "google", "Google Gemini", "GOOGLE_API_KEY"),
    _compatible("llm"),
    _cloud("stt", "deepgram", "Deepgram", "DEEPGRAM_API_KEY"),
    _cloud("stt", "openai", "OpenAI", "OPENAI_API_KEY"),
    _cloud("stt", "assemblyai", "AssemblyAI", "ASSEMBLYAI_API_KEY"),
    # Speaches, faster-whisper-server, vLLM, ...: `POST {base_url}/audio/transcriptions`.
    _compatible("stt"),
    _offline("stt", "local-whisper", "Whisper (offline, faster-whisper)"),
    _cloud("tts", "cartesia", "Cartesia", "CARTESIA_API_KEY"),
    _cloud("tts", "elevenlabs", "ElevenLabs", "ELEVEN_API_KEY"),
    _cloud("tts", "openai", "OpenAI", "OPENAI_API_KEY"),
    _cloud("tts", "deepgram", "Deepgram", "DEEPGRAM_API_KEY"),
    # Speaches, Kokoro-FastAPI, ...: `POST {base_url}/audio/speech`, asked for raw 24 kHz PCM.
    _compatible("tts"),
    _offline("tts", "local", "Local voice (offline)"),
)

_BY_KEY: dict[tuple[str, str], ProviderInfo] = {(p.provider_type, p.name): p for p in _CATALOG}


def all_providers(provider_type: str | None = None) -> list[ProviderInfo]:
    """Every supported provider in catalog order, or those of one type."""
    return [p for p in _CATALOG if provider_type is None or p.provider_type == provider_type]


def supported_providers(provider_type: str) -> list[str]:
    """The provider names supported for a type (`stt`, `llm`, `tts`); empty for an unknown type."""
    return [p.name for p in all_providers(provider_type)]


def provider_info(provider_type: str, name: str) -> ProviderInfo | None:
    return _BY_KEY.get((provider_type, name))
