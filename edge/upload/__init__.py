"""Uploader of recorded segments: runs while docked, bookmarked first, resumable, verified, deletes after confirmation."""
