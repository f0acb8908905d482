"""Process settings that shape how calls run."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from agent_studio.context import AppContext
from tests.conftest import make_settings


@pytest.mark.parametrize("mode", ["model", "vad"])
def test_turn_detection_reaches_every_call_the_server_hosts(tmp_path: Path, mode: str) -> None:
    context = AppContext.create(make_settings(tmp_path, None, turn_detection=mode))
    assert context.host.options.turn_detection == mode


def test_turn_detection_is_model_by_default_and_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert make_settings(tmp_path, None).turn_detection == "model"
    monkeypatch.setenv("AGENT_STUDIO_TURN_DETECTION", "vad")
    assert make_settings(tmp_path, None).turn_detection == "vad"
    monkeypatch.setenv("AGENT_STUDIO_TURN_DETECTION", "silence")
    with pytest.raises(ValidationError, match="turn_detection"):
        make_settings(tmp_path, None)


def test_webrtc_packet_time_reaches_the_peers_and_is_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent_studio.media.embedded.browser import webrtc_options

    assert webrtc_options(make_settings(tmp_path, None)).ptime_ms == 20
    monkeypatch.setenv("AGENT_STUDIO_WEBRTC_PTIME_MS", "60")
    assert webrtc_options(make_settings(tmp_path, None)).ptime_ms == 60
    monkeypatch.setenv("AGENT_STUDIO_WEBRTC_PTIME_MS", "30")
    with pytest.raises(ValidationError, match="ptime_ms"):
        make_settings(tmp_path, None)


def test_webrtc_jitter_packets_reach_the_peers_and_are_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent_studio.media.embedded.browser import webrtc_options

    assert webrtc_options(make_settings(tmp_path, None)).jitter_packets == 2
    monkeypatch.setenv("AGENT_STUDIO_WEBRTC_JITTER_PACKETS", "4")
    assert webrtc_options(make_settings(tmp_path, None)).jitter_packets == 4
    monkeypatch.setenv("AGENT_STUDIO_WEBRTC_JITTER_PACKETS", "0")
    with pytest.raises(ValidationError, match="jitter_packets"):
        make_settings(tmp_path, None)


def test_the_lean_rtp_path_can_be_turned_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent_studio.media.embedded.browser import webrtc_options

    assert webrtc_options(make_settings(tmp_path, None)).lean_rtp is True
    monkeypatch.setenv("AGENT_STUDIO_WEBRTC_LEAN_RTP", "false")
    assert webrtc_options(make_settings(tmp_path, None)).lean_rtp is False
    monkeypatch.setenv("AGENT_STUDIO_WEBRTC_LEAN_RTP", "sometimes")
    with pytest.raises(ValidationError, match="lean_rtp"):
        make_settings(tmp_path, None)


def test_webrtc_dtx_settings_reach_the_peers_and_are_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent_studio.media.embedded.browser import webrtc_options

    options = webrtc_options(make_settings(tmp_path, None))
    assert (options.caller_dtx, options.quiet_fill_seconds, options.agent_dtx) == (True, 1.0, True)
    monkeypatch.setenv("AGENT_STUDIO_WEBRTC_CALLER_DTX", "false")
    monkeypatch.setenv("AGENT_STUDIO_WEBRTC_QUIET_FILL_SECONDS", "2.5")
    options = webrtc_options(make_settings(tmp_path, None))
    assert (options.caller_dtx, options.quiet_fill_seconds, options.agent_dtx) == (False, 2.5, True)
    monkeypatch.setenv("AGENT_STUDIO_WEBRTC_AGENT_DTX", "false")
    monkeypatch.setenv("AGENT_STUDIO_WEBRTC_QUIET_FILL_SECONDS", "0")  # no cap
    options = webrtc_options(make_settings(tmp_path, None))
    assert (options.caller_dtx, options.quiet_fill_seconds, options.agent_dtx) == (False, 0, False)
    for value in ("0.3", "-1", "600"):  # too short for the VAD to end a turn, or nonsense
        monkeypatch.setenv("AGENT_STUDIO_WEBRTC_QUIET_FILL_SECONDS", value)
        with pytest.raises(ValidationError, match=r"the VAD needs 0\.55 s of silence"):
            make_settings(tmp_path, None)
