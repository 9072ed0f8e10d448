"""Pure domain rules and the wire contract shared by the device and the server (no I/O)."""
