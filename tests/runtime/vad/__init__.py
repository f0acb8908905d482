"""Tests of the VAD package."""
