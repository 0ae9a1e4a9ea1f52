"""collab: a real-time collaborative editing server for Yjs documents."""

__version__ = "0.1.0"
