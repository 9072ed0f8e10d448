"""Faithful stand-ins for the hardware that speak the real wire protocols, and the demo that wires it all."""
