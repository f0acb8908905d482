"""One Settings object for the whole process; nothing else reads the environment."""

from __future__ import annotations

import os
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

QUIET_FILL_MIN, QUIET_FILL_MAX = 0.8, 60.0  # WebRTCSettings.quiet_fill_seconds, when not 0


class MediaMode(StrEnum):
    EMBEDDED = "embedded"
    LIVEKIT = "livekit"


class WebRTCSettings(BaseSettings):
    """The embedded WebRTC streams' settings, `AGENT_STUDIO_WEBRTC_*` (or `.env`); nested in
    `Settings.webrtc` and read once with it."""

    model_config = SettingsConfigDict(
        env_prefix="AGENT_STUDIO_WEBRTC_", env_file=".env", extra="ignore", frozen=True
    )

    # Milliseconds of audio per WebRTC packet, both ways (the answer asks the caller for it):
    # 20 is the WebRTC norm; 40 or 60 halve or third the per-packet work and header overhead,
    # at 20 or 40 ms more delay each way.
    ptime_ms: int = 20
    # Packets of the caller's audio that may wait behind a missing one before it is given up
    # (a packet that follows the last one is decoded at once); raise it on jittery networks.
    jitter_packets: int = Field(default=2, ge=1, le=8)
    # The answer asks the caller not to send silence (`usedtx=1`; browsers honour it): its
    # pauses are heard as silence made by the server (with lean_rtp only).
    caller_dtx: bool = True
    # Seconds of a quiet caller's pause the runtime hears as silence at most (less once its
    # VAD has ended the caller's turn); then nothing until the caller's audio comes back
    # (0: no cap).
    quiet_fill_seconds: float = 1.0
    # The agent's stream sends nothing while the agent is silent but a comfort-noise packet
    # every 400 ms (DTX, as browsers send; with webrtc_lean_rtp only).
    agent_dtx: bool = True
    # RTP both ways off aiortc's per-packet path once a call is connected (webrtc/fastpath/send.py);
    # false leaves every packet to aiortc (more CPU per call), should the lean path misbehave.
    lean_rtp: bool = True

    @field_validator("quiet_fill_seconds")
    @classmethod
    def _quiet_fill(cls, value: float) -> float:
        if value != 0 and not QUIET_FILL_MIN <= value <= QUIET_FILL_MAX:
            raise ValueError(
                f"must be 0 (no cap) or from {QUIET_FILL_MIN:g} to {QUIET_FILL_MAX:g}"
                " seconds: the VAD needs 0.55 s of silence to end a caller's turn"
            )
        return value

    @field_validator("ptime_ms")
    @classmethod
    def _opus_packet(cls, value: int) -> int:
        if value not in (20, 40, 60):
            raise ValueError("must be 20, 40 or 60 (milliseconds of audio per packet)")
        return value


class Settings(BaseSettings):
    """Settings from `AGENT_STUDIO_*` variables (and LiveKit's own `LIVEKIT_*` names) or `.env`."""

    model_config = SettingsConfigDict(
        env_prefix="AGENT_STUDIO_", env_file=".env", extra="ignore", populate_by_name=True
    )

    data_dir: Path = Path(".agent-studio")
    database_url: str | None = None
    api_key: SecretStr | None = None
    secret_key: SecretStr | None = None
    media: MediaMode = MediaMode.EMBEDDED
    public_url: str | None = None
    log_level: str = "info"
    # `text`: one readable line per record; `json`: one JSON object per line (uvicorn's too).
    log_format: Literal["text", "json"] = "text"
    # Offer the `daily-call` demo workflow on the first start with an empty database.
    demo: bool = True

    # Operations (docs/operations.md). `GET /metrics` asks for this bearer token when it is set
    # and is open when it is not.
    metrics_token: SecretStr | None = None
    # OpenTelemetry traces go to this OTLP/HTTP collector (the standard variable's name, e.g.
    # http://collector:4318) when it is set; none are made when it is not.
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "OTEL_EXPORTER_OTLP_ENDPOINT", "AGENT_STUDIO_OTEL_EXPORTER_OTLP_ENDPOINT"
        ),
    )
    # Traces carry what was said (prompts, transcripts, tool arguments) only when this is true.
    trace_content: bool = False

    # Request bodies above this many bytes are refused with 413 before they are read whole
    # (docs/operations.md, "Reliability").
    max_body_bytes: int = Field(default=1024 * 1024, gt=0)

    # Database pool (PostgreSQL); SQLite always uses one connection, see core/db.py.
    db_pool_size: int = 10
    db_max_overflow: int = 20

    # Voice calls: who decides the caller has finished a turn. `model`: livekit's local
    # end-of-turn model listens to the audio (waits up to 3 s when unsure); `vad`: the caller's
    # silence alone (0.55 s plus 0.5 s), cheaper per call and predictable.
    turn_detection: Literal["model", "vad"] = "model"

    # Call lifecycle.
    heartbeat_timeout_seconds: float = 30.0
    sweep_interval_seconds: float = 5.0
    call_token_ttl_seconds: int = 3600

    # LiveKit (distributed mode). The names are LiveKit's own.
    livekit_url: str | None = Field(
        default=None, validation_alias=AliasChoices("LIVEKIT_URL", "AGENT_STUDIO_LIVEKIT_URL")
    )
    livekit_api_key: str | None = Field(
        default=None,
        validation_alias=AliasChoices("LIVEKIT_API_KEY", "AGENT_STUDIO_LIVEKIT_API_KEY"),
    )
    livekit_api_secret: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("LIVEKIT_API_SECRET", "AGENT_STUDIO_LIVEKIT_API_SECRET"),
    )
    livekit_agent_name: str = "agent-studio"
    livekit_request_timeout_seconds: float = 5.0

    # SIP.
    sip_trunk_id: str | None = None
    sip_trunk_uri: str | None = None
    sip_username: str | None = None
    sip_password: SecretStr | None = None
    sip_from_number: str | None = None
    sip_bind: str = "0.0.0.0"
    sip_port: int = 5060
    rtp_ports: str = "10000-20000"
    sip_allowed_sources: str = ""
    sip_public_address: str | None = None
    # SIP over TCP: what one source and all sources may hold open, how long a connection may
    # stay silent, and the file descriptors kept free for HTTP (docs/sip.md, "SIP over TCP").
    sip_tcp_max_connections: int = Field(default=256, ge=1)
    sip_tcp_max_connections_per_source: int = Field(default=32, ge=1)
    sip_tcp_first_request_timeout_seconds: float = Field(default=5.0, gt=0)
    sip_tcp_idle_timeout_seconds: float = Field(default=600.0, gt=0)
    sip_fd_reserve: int = Field(default=64, ge=0)
    # The embedded SIP user agent runs when this is true, or (unset) when a trunk is configured.
    sip_enabled: bool | None = None

    @property
    def sip_listener_enabled(self) -> bool:
        if self.media is not MediaMode.EMBEDDED:
            return False
        return self.sip_enabled if self.sip_enabled is not None else bool(self.sip_trunk_uri)

    # Embedded WebRTC.
    ice_servers: str = ""
    ice_hosts: str = ""
    ice_allowed_peers: str = ""
    ice_public_address: str | None = None
    media_timeout_seconds: float = 20.0
    webrtc: WebRTCSettings = Field(default_factory=lambda: WebRTCSettings())
    """The WebRTC streams' settings (`AGENT_STUDIO_WEBRTC_*`)."""

    @field_validator("metrics_token", mode="before")
    @classmethod
    def _no_empty_token(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("livekit_url")
    @classmethod
    def _strip_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'agent-studio.db').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")


def provider_env_key(variable: str) -> str | None:
    """A provider's usual key variable (`OPENAI_API_KEY`, ...), the last resort for a call's key."""
    value = os.environ.get(variable)
    return value or None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
