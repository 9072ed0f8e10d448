"""Body-camera recorder: capture, overlay, crash-safe fragmented-MP4 segments, signed manifest, repair, watchdog."""
