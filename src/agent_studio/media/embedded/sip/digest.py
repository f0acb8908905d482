"""SIP digest authentication (RFC 3261 §22, RFC 7616): answering and checking challenges."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from agent_studio.media.embedded.sip.fields import split_outside

_HASHES = {"MD5": "md5", "SHA-256": "sha256", "SHA-512-256": "sha512_256"}


class DigestError(ValueError):
    """A challenge we cannot answer (unknown algorithm or scheme)."""


@dataclass(frozen=True, slots=True)
class Challenge:
    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ()
    opaque: str | None = None
    stale: bool = False


def _h(algorithm: str, text: str) -> str:
    base = algorithm.upper().removesuffix("-SESS")
    name = _HASHES.get(base)
    if name is None:
        raise DigestError("unsupported digest algorithm")
    return hashlib.new(name, text.encode()).hexdigest()


def _parse_auth_params(value: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = value.strip().partition(" ")
    params: dict[str, str] = {}
    for item in split_outside(rest, ","):
        name, _, val = item.partition("=")
        params[name.strip().lower()] = val.strip().strip('"')
    return scheme, params


def parse_challenge(value: str) -> Challenge:
    scheme, params = _parse_auth_params(value)
    if scheme.lower() != "digest" or "nonce" not in params:
        raise DigestError("not a digest challenge")
    qop = tuple(q.strip().lower() for q in params.get("qop", "").split(",") if q.strip())
    algorithm = params.get("algorithm", "MD5").upper()
    _h(algorithm, "")  # reject unknown algorithms now
    return Challenge(
        realm=params.get("realm", ""),
        nonce=params["nonce"],
        algorithm=algorithm,
        qop=qop,
        opaque=params.get("opaque"),
        stale=params.get("stale", "").lower() == "true",
    )


def _response(
    ch: Challenge, username: str, password: str, method: str, uri: str, cnonce: str, nc: str
) -> tuple[str, str | None]:
    alg = ch.algorithm
    ha1 = _h(alg, f"{username}:{ch.realm}:{password}")
    if alg.endswith("-SESS"):
        ha1 = _h(alg, f"{ha1}:{ch.nonce}:{cnonce}")
    ha2 = _h(alg, f"{method}:{uri}")
    if "auth" in ch.qop:
        return _h(alg, f"{ha1}:{ch.nonce}:{nc}:{cnonce}:auth:{ha2}"), "auth"
    return _h(alg, f"{ha1}:{ch.nonce}:{ha2}"), None


def authorization(
    ch: Challenge, username: str, password: str, method: str, uri: str, nc: int = 1
) -> str:
    """The `Authorization` / `Proxy-Authorization` value answering `ch` (qop=auth if offered)."""
    cnonce = secrets.token_hex(8)
    nc_text = f"{nc:08x}"
    response, qop = _response(ch, username, password, method, uri, cnonce, nc_text)
    parts = [
        f'username="{username}"',
        f'realm="{ch.realm}"',
        f'nonce="{ch.nonce}"',
        f'uri="{uri}"',
        f'response="{response}"',
        f"algorithm={ch.algorithm}",
    ]
    if qop:
        parts += [f'cnonce="{cnonce}"', f"qop={qop}", f"nc={nc_text}"]
    if ch.opaque is not None:
        parts.append(f'opaque="{ch.opaque}"')
    return "Digest " + ", ".join(parts)


class DigestVerifier:
    """Challenges inbound requests and checks the answers; nonces are HMACs of a timestamp."""

    def __init__(self, realm: str, username: str, password: str, nonce_ttl: float = 300.0) -> None:
        self.realm = realm
        self._username = username
        self._password = password
        self._key = secrets.token_bytes(32)
        self._ttl = nonce_ttl

    def _nonce(self, issued: int) -> str:
        mac = hmac.new(self._key, str(issued).encode(), "sha256").hexdigest()[:32]
        return f"{issued:x}.{mac}"

    def challenge(self, stale: bool = False) -> str:
        nonce = self._nonce(int(time.time()))
        stale_text = ", stale=TRUE" if stale else ""
        return (
            f'Digest realm="{self.realm}", nonce="{nonce}", algorithm=MD5, qop="auth"{stale_text}'
        )

    def check(self, header: str | None, method: str) -> tuple[bool, bool]:
        """(valid, stale): whether `header` answers one of our challenges correctly."""
        if not header:
            return False, False
        scheme, params = _parse_auth_params(header)
        nonce = params.get("nonce", "")
        issued_text, _, _ = nonce.partition(".")
        try:
            issued = int(issued_text, 16)
        except ValueError:
            return False, False
        if scheme.lower() != "digest" or not hmac.compare_digest(nonce, self._nonce(issued)):
            return False, False
        if params.get("username") != self._username or params.get("realm") != self.realm:
            return False, False
        qop = params.get("qop", "").lower()
        ch = Challenge(self.realm, nonce, params.get("algorithm", "MD5").upper(),
                       ("auth",) if qop == "auth" else ())  # fmt: skip
        try:
            expected, _ = _response(ch, self._username, self._password, method,
                                    params.get("uri", ""), params.get("cnonce", ""),
                                    params.get("nc", ""))  # fmt: skip
        except DigestError:
            return False, False
        if not hmac.compare_digest(expected, params.get("response", "")):
            return False, False
        if time.time() - issued > self._ttl:
            return False, True
        return True, False
