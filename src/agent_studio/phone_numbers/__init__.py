"""phone numbers domain."""
