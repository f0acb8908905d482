"""Tests of the workflows API."""
