"""Small HTTP control API of the terminal simulator: present a card, enter a PIN, walk away, pick a scenario
or a profile, inject a line fault, unplug/replug, and read the state and the journal of charges (JSON)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from simulators.zvt.faults import LineFault
from simulators.zvt.scenarios import Scenario
from simulators.zvt.terminal import SimulatedTerminal


def _apply(sim: SimulatedTerminal, action: str, body: dict[str, Any]) -> dict[str, Any]:
    if action == "card":
        sim.present_card(str(body.get("card", sim.settings.card)))
    elif action == "pin":
        sim.enter_pin(str(body["pin"]))
    elif action == "walk-away":
        sim.walk_away()
    elif action == "scenario":
        sim.settings.scenario = Scenario(str(body["scenario"]))
        if "card" in body:
            sim.settings.card = str(body["card"])
        if "auto_present" in body:
            sim.settings.auto_present = bool(body["auto_present"])
        if "auto_pin" in body:
            sim.settings.auto_pin = bool(body["auto_pin"])
    elif action == "profile":
        sim.settings.apply_profile(str(body["profile"]))
    elif action == "fault":
        prefix = bytes.fromhex(str(body.get("apdu_prefix", "")))
        sim.faults.add(
            LineFault(
                str(body["kind"]),
                int(body.get("count", 1)),
                float(body.get("delay", 0.0)),
                prefix,
                int(body.get("skip", 0)),
            )
        )
    elif action == "unplug":
        sim.line.vanish()
    elif action == "replug":
        sim.line.restore()
    else:
        raise KeyError(action)
    return sim.state()


def serve_control(sim: SimulatedTerminal, host: str, port: int) -> ThreadingHTTPServer:
    """Start the API in a daemon thread; POST /<action> with a JSON body, GET /state."""

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, code: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload, default=str).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path.rstrip("/") in ("", "/state"):
                self._reply(200, sim.state())
            else:
                self._reply(404, {"error": f"unknown path {self.path}"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > 65536:
                self._reply(413, {"error": "body too large"})
                return
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
                if not isinstance(body, dict):
                    raise ValueError("body must be a JSON object")
                self._reply(200, _apply(sim, self.path.strip("/"), body))
            except KeyError as exc:
                self._reply(
                    404 if str(exc).strip("'") == self.path.strip("/") else 400,
                    {"error": f"missing or unknown {exc}"},
                )
            except ValueError as exc:
                self._reply(400, {"error": str(exc)})

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="zvt-sim-api", daemon=True).start()
    return server
