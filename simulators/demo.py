"""`patrol-demo`: runs the whole system on embedded defaults and simulated hardware, and stops it cleanly.

The server (embedded amqtt broker, SQLite, HTTP), every hardware simulator and one device process run as
child processes with configuration files written under the demo folder. Ctrl-C (or SIGTERM) stops them in
reverse order.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def pick(port: int) -> int:
    return port if port_is_free(port) else free_port()


@dataclass
class Ports:
    http: int
    device_http: int
    mqtt: int
    terminal: int
    printer: int
    extra: dict[str, int] = field(default_factory=dict)

    @classmethod
    def choose(cls, preferred: bool) -> Ports:
        if preferred:
            return cls(pick(8000), pick(8001), pick(18830), pick(20007), pick(9100))
        return cls(free_port(), free_port(), free_port(), free_port(), free_port())


@dataclass
class Child:
    name: str
    argv: list[str]
    ready_url: str | None = None
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None


def write_configs(root: Path, ports: Ports) -> tuple[Path, Path]:
    server_dir = root / "server"
    device_dir = root / "device"
    server_toml = root / "server.toml"
    edge_toml = root / "edge.toml"
    server_toml.write_text(
        f"""data_dir = "{server_dir}"

[database]
url = "sqlite:///{server_dir / "server.db"}"

[http]
host = "127.0.0.1"
port = {ports.http}
public_url = "http://127.0.0.1:{ports.http}"

[mqtt]
url = "mqtt://127.0.0.1:{ports.mqtt}"
embedded = true

[storage]
video_dir = "{server_dir / "video"}"

[keys]
signing_key_file = "{server_dir / "server_ed25519.pem"}"
""",
        encoding="utf-8",
    )
    edge_toml.write_text(
        f"""[device]
id = "DEV-0001"
data_dir = "{device_dir}"

[terminal]
url = "socket://127.0.0.1:{ports.terminal}"

[printer]
url = "tcp://127.0.0.1:{ports.printer}"

[mqtt]
url = "mqtt://127.0.0.1:{ports.mqtt}"
username = "DEV-0001"

[server]
url = "http://127.0.0.1:{ports.http}"

[http]
port = {ports.device_http}
""",
        encoding="utf-8",
    )
    return server_toml, edge_toml


def wait_ready(child: Child, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.proc is not None and child.proc.poll() is not None:
            raise RuntimeError(f"{child.name} exited with code {child.proc.returncode}; see {child.log_path}")
        if child.ready_url is None:
            return
        try:
            with urllib.request.urlopen(child.ready_url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(
        f"{child.name} not ready after {timeout:.0f} s ({child.ready_url}); see {child.log_path}"
    )


def start(child: Child, logs: Path, env: dict[str, str]) -> None:
    child.log_path = logs / f"{child.name}.log"
    out = child.log_path.open("ab")
    child.proc = subprocess.Popen(
        child.argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    out.close()


def stop(child: Child, timeout: float = 10) -> None:
    proc = child.proc
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def plan(root: Path, ports: Ports, server_toml: Path, edge_toml: Path) -> list[Child]:
    """The children in start order: server first, then simulators, then the device."""
    return [
        Child(
            "server",
            [str(BIN / "patrol-server"), "--config", str(server_toml), "run"],
            f"http://127.0.0.1:{ports.http}/healthz",
        ),
        Child(
            "device",
            [str(BIN / "patrol-edge"), "--config", str(edge_toml), "run"],
            f"http://127.0.0.1:{ports.device_http}/healthz",
        ),
    ]


class _Stop(Exception):
    pass


def _raise_stop(_sig: int, _frame: object) -> None:
    raise _Stop


def cmd_run(args: argparse.Namespace) -> int:
    root = Path(args.dir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    logs = root / "logs"
    logs.mkdir(exist_ok=True)
    ports = Ports.choose(preferred=not args.random_ports)
    server_toml, edge_toml = write_configs(root, ports)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    children = plan(root, ports, server_toml, edge_toml)
    signal.signal(signal.SIGTERM, _raise_stop)
    started: list[Child] = []
    try:
        for child in children:
            start(child, logs, env)
            started.append(child)
            wait_ready(child, args.start_timeout)
        print("patrolkit demo is running:", flush=True)
        print(f"  server HTTP     http://127.0.0.1:{ports.http}  (health: /healthz)")
        print(f"  MQTT broker     mqtt://127.0.0.1:{ports.mqtt}  (embedded amqtt)")
        print(f"  device HTTP     http://127.0.0.1:{ports.device_http}/status")
        print(f"  ZVT terminal    socket://127.0.0.1:{ports.terminal}")
        print(f"  ESC/POS printer tcp://127.0.0.1:{ports.printer}")
        print(f"  configs, data   {root}   logs: {logs}")
        print("Press Ctrl-C to stop.", flush=True)
        deadline = time.monotonic() + args.duration if args.duration else None
        while deadline is None or time.monotonic() < deadline:
            for child in started:
                if child.proc is not None and child.proc.poll() is not None:
                    print(
                        f"{child.name} exited with code {child.proc.returncode}; see {child.log_path}",
                        flush=True,
                    )
                    return 1
            time.sleep(0.5)
    except (KeyboardInterrupt, _Stop):
        pass
    except (RuntimeError, TimeoutError) as exc:
        print(f"demo failed to start: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        for child in reversed(started):
            stop(child)
        print("patrolkit demo stopped.", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="patrol-demo", description="Run the whole patrolkit system locally."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = sub.add_parser("run", help="start server, simulators and one device; Ctrl-C stops")
    run.add_argument("--dir", default="var/demo", help="folder for configs, data and logs")
    run.add_argument(
        "--duration", type=float, default=0, help="stop by itself after N seconds (0 = run until Ctrl-C)"
    )
    run.add_argument("--random-ports", action="store_true", help="use free random ports (tests)")
    run.add_argument("--start-timeout", type=float, default=60)
    run.set_defaults(handler=cmd_run)
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    return int(args.handler(args))


if __name__ == "__main__":
    raise SystemExit(main())
