"""Presence: who is online in a workspace, on which notes, with what status."""
