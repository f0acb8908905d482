"""Agent Studio: a self-hostable platform for voice AI agents."""

__version__ = "0.1.0"
