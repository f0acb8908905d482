"""SipConfig from the app's Settings, and dial() refusing what it cannot place."""

from __future__ import annotations

import ipaddress
import uuid
from typing import Any

import pytest
from pydantic import SecretStr

from agent_studio.config import Settings
from agent_studio.media.embedded.sip import SipConfig, SipConfigError, SipError, SipUserAgent
from tests.media.sip.conftest import MakeUa
from tests.media.sip.support import Recorder


def _settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


def test_from_settings_reads_every_sip_variable() -> None:
    config = SipConfig.from_settings(
        _settings(
            sip_trunk_uri="sip:trunk.example.com:5070;transport=tcp",
            sip_username="alice",
            sip_password=SecretStr("secret"),
            sip_from_number="+14155550100",
            sip_bind="127.0.0.1",
            sip_port=5080,
            rtp_ports="12000-12100",
            sip_allowed_sources="10.0.0.0/8, 192.0.2.7",
            sip_public_address="203.0.113.9",
        ),
        media_timeout=5.0,
    )
    assert config.trunk is not None
    assert (config.trunk.host, config.trunk.port, config.trunk.transport) == (
        "trunk.example.com", 5070, "tcp",
    )  # fmt: skip
    assert (config.username, config.password, config.from_number) == (
        "alice", "secret", "+14155550100",
    )  # fmt: skip
    assert (config.bind, config.port, config.rtp_ports) == ("127.0.0.1", 5080, (12000, 12100))
    assert config.allowed_sources == (
        ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("192.0.2.7/32"),
    )  # fmt: skip
    assert (config.public_address, config.media_timeout) == ("203.0.113.9", 5.0)
    assert "'secret'" not in repr(config)


def test_defaults_and_a_bare_trunk_host() -> None:
    config = SipConfig.from_settings(_settings(sip_trunk_uri="pbx.local"))
    assert config.trunk is not None and str(config.trunk) == "sip:pbx.local"
    assert (config.bind, config.port, config.rtp_ports) == ("0.0.0.0", 5060, (10000, 20000))
    assert config.allowed_sources == () and not config.has_credentials


@pytest.mark.parametrize(
    "values",
    [
        {"sip_trunk_uri": "sips:secure.example.com"},
        {"sip_trunk_uri": "sip:x.example.com;transport=tls"},
        {"rtp_ports": "20000-10000"},
        {"rtp_ports": "lots"},
        {"sip_allowed_sources": "not-a-cidr"},
        {"sip_from_number": "+1555>\r\nX-Evil: 1"},
    ],
)
def test_unusable_settings_are_refused_naming_the_variable(values: dict[str, str]) -> None:
    with pytest.raises(SipConfigError, match="AGENT_STUDIO_"):
        SipConfig.from_settings(_settings(**values))


async def test_dial_refuses_what_it_cannot_place(make_ua: MakeUa) -> None:
    no_trunk, _ = await make_ua()
    with pytest.raises(SipError, match="AGENT_STUDIO_SIP_TRUNK_URI"):
        await no_trunk.dial(uuid.uuid4(), "+15550199", 5)
    ua, _ = await make_ua(trunk="sip:127.0.0.1:9")
    with pytest.raises(SipError):
        await ua.dial(uuid.uuid4(), "+1555>\r\nX-Evil: 1", 5)
    stopped = SipUserAgent(ua.config, Recorder())
    with pytest.raises(SipError, match="not started"):
        await stopped.dial(uuid.uuid4(), "+15550199", 5)
