"""One module per scenario; each runs against one target and returns its raw results."""
