"""A virtual ESC/POS printer: byte-stream parser, code pages, paper model, renderer, receipt store, TCP and pty."""
