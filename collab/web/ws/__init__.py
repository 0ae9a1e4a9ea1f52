"""The WebSocket endpoints: `/ws/docs/{workspace_id}/{note_id}` (y-websocket) and `/ws/live`."""
