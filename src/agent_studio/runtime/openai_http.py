"""The HTTP clients of the providers that speak through the OpenAI SDK, over one TLS context.

livekit's OpenAI plugins make a new HTTP client for every LLM, STT and TTS instance, so for
every call, and each new client builds a TLS context, reading the CA bundle: about 45 ms of CPU
with the GIL held, measured here, up to three times per call. On a server carrying live calls
every call that started stalled the event loop, and with it every other call's audio, for
100 ms or more (docs/webrtc.md, "Capacity"). Here a call's OpenAI SDK clients share one HTTP
client (`CallProviders`), and every client made here shares the process's TLS context, made
once: a new client costs about 0.2 ms.

A client per call, as livekit has it, not one for the process: each call keeps its own pool
of connections, and nothing of one call's (its key, its connections' state) reaches another's.
"""

from __future__ import annotations

import functools
import ssl
from typing import TYPE_CHECKING

import httpx2 as httpx

if TYPE_CHECKING:
    import openai

# livekit's own settings for its plugins' clients
TIMEOUT = httpx.Timeout(connect=15.0, read=5.0, write=5.0, pool=5.0)
LIMITS = httpx.Limits(max_connections=50, max_keepalive_connections=50, keepalive_expiry=120)


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The process's TLS client context (system CA bundle, `SSL_CERT_FILE` honoured)."""
    return httpx.create_ssl_context()


def new_client() -> httpx.AsyncClient:
    """An HTTP client for OpenAI SDK clients (`sdk_client`); close it when done."""
    return httpx.AsyncClient(
        verify=tls_context(), timeout=TIMEOUT, limits=LIMITS, follow_redirects=True
    )


def sdk_client(http: httpx.AsyncClient, api_key: str, base_url: str | None) -> openai.AsyncClient:
    """An OpenAI SDK client over `http` (closing it would close `http`: leave it open)."""
    import openai

    return openai.AsyncClient(api_key=api_key, base_url=base_url, max_retries=0, http_client=http)
