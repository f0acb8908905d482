"""How a call's audio gets in and out: the embedded transports or LiveKit, behind one interface."""
