"""ZVT payment-terminal simulator: the PT role on a pty or TCP, with card profiles, scenarios and line faults."""
