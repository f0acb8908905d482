"""Tests of the agents API."""
