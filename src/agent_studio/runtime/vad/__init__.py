"""Voice activity detection for calls: a lean silero stream, batched inference, VAD-driven STT."""
