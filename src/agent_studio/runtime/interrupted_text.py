"""How much of an interrupted reply the caller heard, for the transcript.

livekit records an interrupted reply with the text its audio output reports as played
(`synchronized_transcript` in `on_playback_finished`), or else with the whole generated text.
livekit's own `TranscriptSynchronizer` gets that by pacing the text word by word against the
audio, with a speaking-rate detector running numpy over every frame of the agent's voice: at 30
calls that cost a fifth of a core and made a tenth of the audio frames late (measured with
bench/webrtc_capacity.py). Here the transport's output does it at the moment it is interrupted,
from what it already counts: the share of the reply's audio that was pulled, applied to the
reply's text (`ReplyText`, the session's transcription output), cut back to a whole word.

It is an estimate, as livekit's is: exact in proportion when the reply's audio was all
synthesized before the interruption (local TTS, short replies); when the TTS was still
streaming, no more than `MAX_CHARS_PER_SECOND` of played audio is counted as heard.
"""

from __future__ import annotations

from collections import deque

from livekit.agents.voice import io

MAX_CHARS_PER_SECOND = 18.0  # brisk English speech is 14-16 characters a second, spaces included
_KEEP = 8  # replies' texts kept waiting for their audio (a reply that never plays is dropped)


class ReplyText(io.TextOutput):
    """The session's transcription output: each reply's text, until its audio finishes.

    livekit forwards a reply's text as the model writes it and flushes it when the reply's
    text ends; the audio output takes one text per reply it finishes (`take`), in order."""

    def __init__(self) -> None:
        super().__init__(label="reply-text", next_in_chain=None)
        self._current: list[str] = []
        self._done: deque[str] = deque(maxlen=_KEEP)
        self._current_taken = False  # its audio finished before its text did

    async def capture_text(self, text: str) -> None:
        self._current.append(text)

    def flush(self) -> None:
        text, self._current = "".join(self._current), []
        if self._current_taken:
            self._current_taken = False  # its audio already took what there was
        elif text:
            self._done.append(text)

    def take(self) -> str:
        """The text of the oldest reply whose audio has not finished."""
        if self._done:
            return self._done.popleft()
        self._current_taken = True
        return "".join(self._current)


def heard_part(text: str, played: float, captured: float, complete: bool) -> str:
    """The words of `text` said in `played` of `captured` seconds of its audio (`complete`:
    the reply's audio was all there); whole words only."""
    if played <= 0 or captured <= 0 or not text:
        return ""
    cut = len(text) * min(1.0, played / captured)
    if not complete:
        cut = min(cut, played * MAX_CHARS_PER_SECOND)
    cut_at = int(cut)
    if cut_at >= len(text):
        return text
    if not text[cut_at].isspace():  # inside a word: that word was not finished
        cut_at = max(text.rfind(" ", 0, cut_at), 0)
    return text[:cut_at].rstrip()
