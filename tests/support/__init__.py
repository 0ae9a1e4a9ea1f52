"""Test helpers that exercise the server from the outside (no imports from `collab`)."""
