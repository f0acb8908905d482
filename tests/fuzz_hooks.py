"""Schemathesis hooks: how to put generated bodies on the wire for media types it does not know."""

from __future__ import annotations

import schemathesis

# SDP is text: the WHIP endpoint's generated offers go out as plain text bodies.
schemathesis.serializer.alias("application/sdp", "text/plain")
