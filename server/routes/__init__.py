"""HTTP API routers, one module per resource; every module here that defines ``router`` is mounted by the app."""
