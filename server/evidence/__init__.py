"""Evidence packages: the ZIP a supervisor exports for a stop or any stretch of a device's footage."""
