"""The officer app: the whole traffic stop on the device's touch screen, served by ``patrol-edge run``.

A local web app (Jinja2 templates, a little plain JavaScript, every asset from the device) shown full-screen by
Chromium in kiosk mode (``deploy/device/``). Its parts, one job each:

- ``web``: builds the app on the device's FastAPI application (templates, static files, headers, routes);
- ``i18n`` and ``messages.toml``: every text in Kazakh, Russian and English;
- ``accounts``: officers' PINs (argon2 hashes only, from ``officer add --pin`` or the ``officers`` dataset),
  the lockout after wrong PINs, sign-in sessions and the idle lock;
- ``guards``: who may see a page, CSRF tokens and the same-origin rule for every state-changing request;
- ``status_board``: the status bar (recorder, storage, battery, GPS, sync, upload, terminal, printer);
- ``articles``: the article picker (fine, reduced fine, last day of the discount, why not payable);
- ``roadside_check``: the driver's other unpaid fines from the down-synced ``unpaid_fines`` list;
- ``payment_desk``: the terminal and the printer, one payment job at a time per protocol, idempotent Pay keys,
  the officer's answers during the own-card check, Cancel, receipts after the payment;
- ``panels``: what a payment and its receipts look like now, in words, for the page and for live updates;
- ``receipt_preview``: both copies drawn from the same layout as the paper;
- ``routes/``: one module per screen (sign-in, new stop and stop, driver's screen, payment, receipts, shift,
  live updates by server-sent events).
"""
