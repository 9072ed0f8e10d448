"""Supervisor review: accounts and login sessions, protocol search, the protocol page with its footage, and
the access audit (chain of custody). Pages are rendered on the server; ``server.routes.review`` serves them."""
