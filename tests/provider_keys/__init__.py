"""Tests of provider keys, the provider catalog and key resolution."""
