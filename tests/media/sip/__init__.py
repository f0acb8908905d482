"""Tests of the embedded SIP user agent, with SIPp as the far end."""
