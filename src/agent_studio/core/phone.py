"""Phone numbers: E.164 checked by libphonenumber, not a regex."""

from __future__ import annotations

from typing import Annotated

import phonenumbers
from pydantic import AfterValidator


def normalize_e164(value: str) -> str:
    """The number in E.164 if it is a valid, dialable number written in E.164; else ValueError."""
    if not value.startswith("+"):
        raise ValueError("phone number must be in E.164 format, e.g. +14155550123")
    try:
        parsed = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        raise ValueError("phone number must be in E.164 format, e.g. +14155550123") from None
    formatted = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    if formatted != value:
        raise ValueError(f"phone number is not in E.164 form (did you mean {formatted}?)")
    if not phonenumbers.is_valid_number(parsed):
        raise ValueError("phone number is not a valid number for its country code")
    return formatted


E164 = Annotated[str, AfterValidator(normalize_e164)]
