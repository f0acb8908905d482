"""provider keys domain."""
