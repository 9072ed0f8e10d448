"""Sync wire contract shared by device and server: record bodies, signed envelopes, acks, manifests."""
