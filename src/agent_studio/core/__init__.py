"""Shared building blocks: database, errors, paging, crypto, auth, templates, phone numbers."""
