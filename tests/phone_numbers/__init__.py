"""Tests of phone numbers and inbound routing."""
