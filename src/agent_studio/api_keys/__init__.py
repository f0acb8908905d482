"""API keys domain: created, listed and revoked from the command line."""
