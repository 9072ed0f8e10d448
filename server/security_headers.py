"""The security and caching headers every response of the server carries: the review pages, the public receipt
page ``/r/``, segment content and the API alike, error pages included.

``SecurityHeaders`` adds each header a route did not set itself. Scripts come only from the server itself
(``/static``: the workspace's own and vendored hls.js), which fetches playlists and footage from it
(``connect-src``) and plays them through Media Source Extensions (``media-src blob:``).
``Referrer-Policy: same-origin`` keeps URLs (protocol numbers, searches) from other sites while letting the
browser name our own origin on our own form posts; ``no-referrer`` made Chromium send ``Origin: null`` there.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "media-src 'self' blob:; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


class SecurityHeaders:
    """ASGI middleware: ``SECURITY_HEADERS`` on every HTTP response, except where the route set the header
    itself and on the paths in ``exempt`` (FastAPI's interactive docs, which need their own scripts)."""

    def __init__(self, app: ASGIApp, exempt: Iterable[str | None] = ()) -> None:
        self.app = app
        self.exempt = frozenset(p for p in exempt if p)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self.exempt:
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
