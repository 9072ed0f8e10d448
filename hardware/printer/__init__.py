"""ESC/POS printer driver over python-escpos: profiles, text encoding, raster text, status, print confirmation."""
