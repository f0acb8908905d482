"""RTP both ways off aiortc's per-packet path once a call is connected (send and receive)."""
