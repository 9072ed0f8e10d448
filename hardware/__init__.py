"""Generic drivers for real devices (card terminal, printer, camera, power, GPS); nothing here knows about fines."""
