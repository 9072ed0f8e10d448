"""Video store of the server: storage backends and the segment upload protocol."""
