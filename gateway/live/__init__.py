"""Live events to operators' browsers: single-use tickets and the per-extension WebSocket."""
