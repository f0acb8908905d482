"""An interrupted reply's heard part: the share of its audio pulled, in whole words of its text."""

from __future__ import annotations

from agent_studio.runtime.interrupted_text import ReplyText, heard_part

TEXT = "It is sunny today, and the weather is fine for a walk."


def test_the_share_of_the_audio_played_in_whole_words() -> None:
    assert heard_part(TEXT, 0.0, 4.0, complete=True) == ""
    assert heard_part(TEXT, 1.0, 4.0, complete=True) == "It is sunny"  # 13.75 of 55 characters
    assert heard_part(TEXT, 2.0, 4.0, complete=True) == "It is sunny today, and the"
    assert heard_part(TEXT, 4.0, 4.0, complete=True) == TEXT
    assert heard_part(TEXT, 9.0, 4.0, complete=True) == TEXT
    assert heard_part("", 1.0, 4.0, complete=True) == ""


def test_a_reply_still_being_synthesized_counts_no_more_than_a_speaking_rate() -> None:
    # 1 s played of the 1.5 s synthesized so far: not 2/3 of the text, at most 18 characters.
    assert heard_part(TEXT, 1.0, 1.5, complete=False) == "It is sunny today,"
    assert heard_part(TEXT, 1.0, 1.5, complete=True) == "It is sunny today, and the weather"


async def test_each_finished_segment_takes_its_own_reply_text() -> None:
    text = ReplyText()
    await text.capture_text("Hello ")
    await text.capture_text("there.")
    text.flush()
    assert text.take() == "Hello there."
    # A reply cut while its text is still coming: its audio takes what there is, and the rest
    # of that text, flushed later, is not handed to the next reply.
    await text.capture_text("Let me tell")
    assert text.take() == "Let me tell"
    await text.capture_text(" you everything.")
    text.flush()
    await text.capture_text("Sorry, go ahead.")
    text.flush()
    assert text.take() == "Sorry, go ahead."
    assert text.take() == ""
