"""Test doubles for the services at the network edge (LiveKit, model providers, ...)."""
