"""The live path: microphone (or file, or WebSocket) to the listener's ear. See the README's "How it works"."""
