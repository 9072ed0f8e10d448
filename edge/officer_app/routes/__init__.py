"""One router per screen of the officer app."""
