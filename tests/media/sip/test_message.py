"""The SIP message parser and digest authentication, on tricky but legal input and known vectors."""

from __future__ import annotations

import pytest

from agent_studio.media.embedded.sip.digest import (
    Challenge,
    DigestVerifier,
    _response,
    authorization,
    parse_challenge,
)
from agent_studio.media.embedded.sip.fields import parse_name_addr, parse_uri
from agent_studio.media.embedded.sip.message import (
    ParseError,
    SipRequest,
    frame_length,
    make_response,
    parse_message,
)

# Compact forms, folding, a multi-value Via line, odd spacing: RFC 4475 §3.1.1.1 in spirit.
TORTURE = (
    b"INVITE sip:+15550199@example.com;user=phone SIP/2.0\r\n"
    b"v: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-a, SIP/2.0/TCP 192.0.2.2;branch=z9hG4bK-b\r\n"
    b"Max-Forwards:   68\r\n"
    b'f: "Caller, Esq." <sip:+15550123@example.com>;tag=abc\r\n'
    b"t: <sip:+15550199@example.com>\r\n"
    b"i: weird-call-id@host\r\n"
    b"CSeq: 7\r\n INVITE\r\n"
    b"Subject: folded\r\n\t across lines\r\n"
    b"l: 4\r\n"
    b"\r\n"
    b"body and more"
)


def test_parses_compact_folded_and_multi_value_headers() -> None:
    msg = parse_message(TORTURE)
    assert isinstance(msg, SipRequest)
    assert msg.method == "INVITE" and msg.call_id == "weird-call-id@host"
    assert msg.cseq == (7, "INVITE")
    assert [v.split(";")[0] for v in msg.headers.get_all("via")] == [
        "SIP/2.0/UDP 192.0.2.1:5060", "SIP/2.0/TCP 192.0.2.2",
    ]  # fmt: skip
    assert msg.top_via.branch == "z9hG4bK-a"
    assert msg.from_.display == "Caller, Esq." and msg.from_.tag == "abc"
    assert msg.headers.get("subject") == "folded across lines"
    assert msg.body == b"body"


def test_round_trip_keeps_what_matters() -> None:
    msg = parse_message(TORTURE)
    again = parse_message(msg.encode())
    assert again.headers.items == msg.headers.items and again.body == msg.body


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"INVITE sip:x SIP/2.0\r\n\r\n",
        b"INVITE sip:x SIP/2.0\r\nVia SIP/2.0/UDP h\r\n\r\n",
        TORTURE.replace(b"l: 4", b"l: 400"),
        TORTURE.replace(b"CSeq: 7\r\n INVITE", b"CSeq: 7 BYE"),
        TORTURE.replace(b"SIP/2.0\r\nv:", b"SIP/7.0\r\nv:"),
        b"SIP/2.0 999 Nope\r\n\r\n",
        b"\xff\xfe\r\n\r\n",
        b" \t\r\n continuation first\r\n\r\n",
    ],
)
def test_rejects_broken_messages(data: bytes) -> None:
    with pytest.raises(ParseError):
        parse_message(data)


def test_stream_framing_needs_content_length() -> None:
    with pytest.raises(ParseError):
        parse_message(TORTURE.replace(b"l: 4\r\n", b""), stream=True)
    assert frame_length(TORTURE[:20]) is None
    assert frame_length(TORTURE + b"INVITE") == len(TORTURE) - len(b" and more")


def test_response_copies_routing_headers_and_adds_a_to_tag() -> None:
    request = parse_message(TORTURE)
    assert isinstance(request, SipRequest)
    response = make_response(request, 486, "Busy Here", to_tag="xyz")
    assert response.headers.get_all("via") == request.headers.get_all("via")
    assert response.to.tag == "xyz" and response.cseq == (7, "INVITE")


def test_uri_and_name_addr_forms() -> None:
    uri = parse_uri("sip:+1555@[2001:db8::1]:5070;transport=tcp")
    assert (uri.user, uri.host, uri.port, uri.transport) == ("+1555", "[2001:db8::1]", 5070, "tcp")
    assert parse_name_addr("sip:a@b;tag=1").tag == "1"  # addr-spec: params belong to the header
    assert parse_name_addr("<sip:a@b;lr>;tag=2").uri.params == {"lr": None}


def test_digest_matches_the_rfc_2617_example() -> None:
    ch = Challenge("testrealm@host.com", "dcd98b7102dd2f0e8b11d0f600bfb0c093", "MD5", ("auth",))
    response, qop = _response(
        ch, "Mufasa", "Circle Of Life", "GET", "/dir/index.html", "0a4f113b", "00000001"
    )
    assert (response, qop) == ("6629fae49393a05397450978507c4ef1", "auth")


def test_digest_challenge_answer_and_verifier_round_trip() -> None:
    verifier = DigestVerifier("agent-studio", "alice", "secret")
    ch = parse_challenge(verifier.challenge())
    assert ch.qop == ("auth",) and ch.algorithm == "MD5"
    good = authorization(ch, "alice", "secret", "INVITE", "sip:+1555@host")
    assert verifier.check(good, "INVITE") == (True, False)
    assert verifier.check(good, "BYE")[0] is False  # bound to the method
    wrong = authorization(ch, "alice", "nope", "INVITE", "sip:x")
    assert verifier.check(wrong, "INVITE")[0] is False
    forged = good.replace(ch.nonce, "1234." + "0" * 32)
    assert verifier.check(forged, "INVITE")[0] is False


def test_sha256_challenges_are_answered() -> None:
    ch = parse_challenge('Digest realm="r", nonce="n", algorithm=SHA-256, qop="auth,auth-int"')
    header = authorization(ch, "u", "p", "INVITE", "sip:x")
    assert "algorithm=SHA-256" in header and "qop=auth" in header
