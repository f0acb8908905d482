"""Call-scoped JWTs for the embedded WebRTC endpoint: one participant, one call, limited time."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

import jwt

from agent_studio.core.crypto import SecretBox
from agent_studio.core.timeutil import utcnow

_ISSUER = "agent-studio"
_AUDIENCE = "agent-studio/call"


class InvalidCallToken(Exception):
    """The token is malformed, expired, or not for this call."""


@dataclass(frozen=True, slots=True)
class CallTokenClaims:
    call_id: uuid.UUID
    room: str
    identity: str
    token_id: str


class CallTokenIssuer:
    def __init__(self, secrets_box: SecretBox, ttl_seconds: int) -> None:
        self._key = secrets_box.derive(b"agent-studio/call-tokens")
        self._ttl = ttl_seconds

    def issue(self, call_id: uuid.UUID, room: str, identity: str) -> str:
        now = utcnow()
        claims = {
            "iss": _ISSUER,
            "aud": _AUDIENCE,
            "sub": identity,
            "call_id": str(call_id),
            "room": room,
            "iat": int(now.timestamp()),
            "nbf": int(now.timestamp()) - 5,
            "exp": int((now + timedelta(seconds=self._ttl)).timestamp()),
            "jti": secrets.token_urlsafe(12),
        }
        return jwt.encode(claims, self._key, algorithm="HS256")

    def verify(self, token: str, call_id: uuid.UUID) -> CallTokenClaims:
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=["HS256"],
                audience=_AUDIENCE,
                issuer=_ISSUER,
                options={"require": ["exp", "sub", "call_id", "room", "jti"]},
            )
        except jwt.PyJWTError as exc:
            raise InvalidCallToken(str(exc)) from None
        if claims["call_id"] != str(call_id):
            raise InvalidCallToken("token is for another call")
        return CallTokenClaims(
            call_id=call_id, room=claims["room"], identity=claims["sub"], token_id=claims["jti"]
        )
