"""Tests of the media backends."""
