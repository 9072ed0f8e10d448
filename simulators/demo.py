"""`patrol-demo`: runs the whole system on embedded defaults and simulated hardware, and stops it cleanly.

The server (embedded amqtt broker, SQLite, HTTP), every hardware simulator and one device process run as
child processes with configuration files written under the demo folder. Ctrl-C (or SIGTERM) stops them in
reverse order; more Ctrl-C presses while they stop are ignored, so none is left behind. Each child ends with
the demo even when the demo is killed outright (a parent-death signal, ``core.process_stop``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from collections.abc import Sequence
from dataclasses import astuple, dataclass, fields
from pathlib import Path

from core.process_stop import StopRequested, StopSignals, child_env

BIN = Path(sys.executable).parent


def free_port() -> int:
    """A free loopback port."""
    return free_ports(1)[0]


def free_ports(n: int) -> list[int]:
    """``n`` distinct free loopback ports: each socket is held until all are chosen, so that two calls of
    ``free_port`` in a row cannot hand out the same port twice."""
    with contextlib.ExitStack() as held:
        socks = [held.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]


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
    terminal_api: int
    printer: int
    camera: int

    @classmethod
    def choose(cls, preferred: bool) -> Ports:
        if preferred:
            chosen = cls(pick(8000), pick(8001), pick(18830), pick(20007), pick(8021), pick(9100), pick(8554))
            if len(set(astuple(chosen))) == len(fields(cls)):
                return chosen
        return cls(*free_ports(len(fields(cls))))


@dataclass
class Child:
    name: str
    argv: list[str]
    ready_url: str | None = None
    ready_port: int | None = None
    ready_path: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None


@dataclass
class Layout:
    root: Path
    ports: Ports
    device_id: str = "DEV-0001"

    @property
    def server_dir(self) -> Path:
        return self.root / "server"

    @property
    def device_dir(self) -> Path:
        return self.root / "device"

    @property
    def power_dir(self) -> Path:
        return self.root / "power_supply"

    @property
    def gps_link(self) -> Path:
        return self.root / "gps0"

    @property
    def printer_dir(self) -> Path:
        return self.root / "printer"

    @property
    def provision_dir(self) -> Path:
        return self.root / "provision"

    @property
    def server_key(self) -> Path:
        return self.server_dir / "server_ed25519.key"

    @property
    def server_toml(self) -> Path:
        return self.root / "server.toml"

    @property
    def edge_toml(self) -> Path:
        return self.root / "edge.toml"


def write_server_config(lay: Layout) -> None:
    p = lay.ports
    lay.server_toml.write_text(
        f"""data_dir = "{lay.server_dir}"

[database]
url = "sqlite:///{lay.server_dir / "server.db"}"

[http]
host = "127.0.0.1"
port = {p.http}
public_url = "http://127.0.0.1:{p.http}"

[mqtt]
url = "mqtt://127.0.0.1:{p.mqtt}"
embedded = true

[storage]
video_dir = "{lay.server_dir / "video"}"

[keys]
signing_key_file = "{lay.server_key}"
""",
        encoding="utf-8",
    )


def write_edge_config(lay: Layout, mqtt_username: str, mqtt_password: str) -> None:
    p = lay.ports
    lay.edge_toml.write_text(
        f"""[device]
id = "{lay.device_id}"
data_dir = "{lay.device_dir}"
key_file = "{lay.provision_dir / (lay.device_id + ".key")}"

[terminal]
url = "socket://127.0.0.1:{p.terminal}"

[printer]
url = "tcp://127.0.0.1:{p.printer}"

[camera]
source = "tcp://127.0.0.1:{p.camera}"
width = 640
height = 360
fps = 15
segment_seconds = 10

[recorder]
badge = "B-1001"

[power]
sysfs = "{lay.power_dir}"

[gps]
url = "{lay.gps_link}"

[mqtt]
url = "mqtt://127.0.0.1:{p.mqtt}"
username = "{mqtt_username}"
password = "{mqtt_password}"

[server]
url = "http://127.0.0.1:{p.http}"
public_key_files = ["{lay.server_key}.pub"]

[http]
port = {p.device_http}
""",
        encoding="utf-8",
    )


def run_tool(argv: list[str], env: dict[str, str], log: Path, stdin: str | None = None) -> str:
    """Run a one-shot command of the system, append its output to ``log`` and return its stdout."""
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, input=stdin)
    with log.open("a", encoding="utf-8") as fh:
        fh.write(f"$ {' '.join(argv)}\n{done.stdout}{done.stderr}\n")
    if done.returncode not in (0,):
        raise RuntimeError(f"{' '.join(argv[:4])}… exited with {done.returncode}; see {log}")
    return done.stdout


def provision(lay: Layout, env: dict[str, str], log: Path) -> tuple[str, str]:
    """Migrate the server database and register the demo device once; returns its MQTT credentials."""
    server = [str(BIN / "patrol-server"), "--config", str(lay.server_toml)]
    run_tool([*server, "db", "upgrade"], env, log)
    device_toml = lay.provision_dir / f"{lay.device_id}.toml"
    if not device_toml.exists():
        run_tool(
            [*server, "device", "add", lay.device_id, "--label", "demo", "--out", str(lay.provision_dir)],
            env,
            log,
        )
    mqtt = tomllib.loads(device_toml.read_text(encoding="utf-8"))["mqtt"]
    return str(mqtt["username"]), str(mqtt["password"])


def wait_ready(child: Child, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.proc is not None and child.proc.poll() is not None:
            raise RuntimeError(f"{child.name} exited with code {child.proc.returncode}; see {child.log_path}")
        if child.ready_path is not None:
            if child.ready_path.exists():
                return
            time.sleep(0.2)
            continue
        if child.ready_url is None and child.ready_port is None:
            return
        try:
            if child.ready_url is not None:
                with urllib.request.urlopen(child.ready_url, timeout=1) as resp:
                    if resp.status == 200:
                        return
            elif child.ready_port is not None:
                socket.create_connection(("127.0.0.1", child.ready_port), timeout=1).close()
                return
        except OSError:
            pass
        time.sleep(0.2)
    where = child.ready_url or f"port {child.ready_port}"
    raise TimeoutError(f"{child.name} not ready after {timeout:.0f} s ({where}); see {child.log_path}")


def start(child: Child, logs: Path, env: dict[str, str]) -> None:
    child.log_path = logs / f"{child.name}.log"
    out = child.log_path.open("ab")
    child.proc = subprocess.Popen(
        child.argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    out.close()


def stop(child: Child, timeout: float) -> None:
    """SIGTERM, then SIGKILL after ``timeout`` s; safe to call again (a second call finds it ended)."""
    proc = child.proc
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        print(f"{child.name} did not stop within {timeout:.0f} s: killed", flush=True)
        proc.kill()
        proc.wait()


STOP_TIMEOUT = {"device": 40}  # the device waits for its recorder to close the open segment


def stop_all(children: list[Child]) -> None:
    """Stop ``children`` in reverse start order."""
    for child in reversed(children):
        stop(child, STOP_TIMEOUT.get(child.name, 10))


def plan(lay: Layout) -> list[Child]:
    """The children in start order: server, then the simulated hardware, then the device."""
    p = lay.ports
    sim = str(BIN / "patrol-sim")
    return [
        Child(
            "server",
            [str(BIN / "patrol-server"), "--config", str(lay.server_toml), "run"],
            ready_url=f"http://127.0.0.1:{p.http}/healthz",
        ),
        Child(
            "zvt-terminal",
            [
                sim,
                "zvt",
                "serve",
                "--tcp",
                f"127.0.0.1:{p.terminal}",
                "--http",
                f"127.0.0.1:{p.terminal_api}",
            ],
            ready_port=p.terminal,
        ),
        Child(
            "printer",
            [sim, "printer", "--port", str(p.printer), "--out", str(lay.printer_dir)],
            ready_port=p.printer,
        ),
        Child(
            "camera",
            [sim, "camera", "--port", str(p.camera), "--width", "640", "--height", "360", "--fps", "15"],
            ready_port=p.camera,
        ),
        Child(
            "gps",
            [
                sim,
                "gps",
                "--pty",
                str(lay.gps_link),
                "--lat",
                "51.1282",
                "--lon",
                "71.4307",
                "--interval",
                "1",
            ],
            ready_path=lay.gps_link,
        ),
        Child(
            "device",
            [str(BIN / "patrol-edge"), "--config", str(lay.edge_toml), "run"],
            ready_url=f"http://127.0.0.1:{p.device_http}/healthz",
        ),
    ]


def demo_supervisor(lay: Layout, env: dict[str, str], log: Path) -> str:
    """The demo supervisor (login ``demo``) with a fresh random password, returned to be shown once."""
    import secrets

    password = secrets.token_urlsafe(12)
    secret = lay.provision_dir / "supervisor-demo.pw"
    secret.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(password + "\n")
    server = [str(BIN / "patrol-server"), "--config", str(lay.server_toml), "supervisor"]
    made = lay.provision_dir / "supervisor-demo.added"
    try:
        if made.exists():
            run_tool([*server, "password", "demo", "--password-file", str(secret)], env, log)
        else:
            run_tool(
                [*server, "add", "demo", "--name", "Demo Supervisor", "--password-file", str(secret)],
                env,
                log,
            )
            made.touch()
    finally:
        secret.unlink(missing_ok=True)
    return password


def power(lay: Layout, action: str, env: dict[str, str], log: Path) -> None:
    run_tool([str(BIN / "patrol-sim"), "power", "--root", str(lay.power_dir), action], env, log)


DEMO_BADGE, DEMO_PIN = "B-1001", "1001"


def demo_officer(lay: Layout, env: dict[str, str], log: Path) -> None:
    """The demo officer, with the PIN that signs in to the officer app (stored as its argon2id hash)."""
    edge = [str(BIN / "patrol-edge"), "--config", str(lay.edge_toml)]
    run_tool([*edge, "officer", "add", DEMO_BADGE, "Сейтқали Ержан", "--unit", "ДПС УП г. Астана", "--pin",
              "--language", "ru"], env, log, stdin=DEMO_PIN + "\n")  # fmt: skip


def traffic_stop(lay: Layout, env: dict[str, str], log: Path) -> str:
    """One stop from start to end on the command line: protocol for speeding, card payment, two receipts;
    returns its number."""
    edge = [str(BIN / "patrol-edge"), "--config", str(lay.edge_toml)]
    number = "DEMO-" + time.strftime("%Y%m%d-%H%M%S")
    out = run_tool(
        [*edge, "stop", "open", number, "--article", "592.1", "--driver-name", "Жанболатов Арман Серікұлы",
         "--iin", "850101300124", "--plate", "123ABC01", "--officer", "B-1001", "--place", "Астана, пр. Кабанбай батыра 53"],
        env,
        log,
    )  # fmt: skip
    for line in out.strip().splitlines():
        if line.startswith(("protocol ", "position:")):
            print("  " + line, flush=True)
    out = run_tool([*edge, "pay", number, "--officer", "B-1001", "--yes"], env, log)
    for line in out.strip().splitlines():
        if line.startswith(("paid:", "receipt copy")):
            print("  " + line, flush=True)
    return number


def device_status(lay: Layout) -> dict[str, object]:
    url = f"http://127.0.0.1:{lay.ports.device_http}/status"
    with urllib.request.urlopen(url, timeout=5) as resp:
        return dict(json.load(resp))


def _say(text: str) -> None:
    """A line on stdout that is safe in a signal handler (no buffered stream)."""
    os.write(sys.stdout.fileno(), (text + "\n").encode())


def cmd_run(args: argparse.Namespace) -> int:
    """Start everything, walk through one stop, report until Ctrl-C, SIGTERM or ``--duration``; then stop every
    child, whatever happened before (a failed start, a child that died, a second Ctrl-C)."""
    root = Path(args.dir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    lay = Layout(root, Ports.choose(preferred=not args.random_ports))
    signals = StopSignals(raise_in_main=True, say=_say).install()
    started: list[Child] = []
    try:
        return _run(args, lay, signals, started)
    except StopRequested:  # the first signal came just as the run ended
        return 0
    finally:
        stop_all(started)  # never interrupted: the first signal has been taken, or hold() was called
        print("patrolkit demo stopped.", flush=True)


def _run(args: argparse.Namespace, lay: Layout, signals: StopSignals, started: list[Child]) -> int:
    logs = lay.root / "logs"
    logs.mkdir(exist_ok=True)
    env = child_env(dict(os.environ, PYTHONUNBUFFERED="1"))  # every child ends with the demo
    tools_log = logs / "commands.log"
    p = lay.ports
    try:
        write_server_config(lay)
        username, password = provision(lay, env, tools_log)
        write_edge_config(lay, username, password)
        review_password = demo_supervisor(lay, env, tools_log)
        demo_officer(lay, env, tools_log)
        power(lay, "undock", env, tools_log)
        for child in plan(lay):
            started.append(child)
            start(child, logs, env)
            wait_ready(child, args.start_timeout)
        print("patrolkit demo is running:", flush=True)
        print(
            f"  officer app     http://127.0.0.1:{p.device_http}/  (badge {DEMO_BADGE}, PIN {DEMO_PIN}; on a device "
            "deploy/device/officer-kiosk shows it full-screen)"
        )
        print(f"  server HTTP     http://127.0.0.1:{p.http}  (health: /healthz, receipts: /r/<code>)")
        print(f"  supervisor UI   http://127.0.0.1:{p.http}/review  (login demo, password {review_password})")
        print(f"  MQTT broker     mqtt://127.0.0.1:{p.mqtt}  (embedded amqtt)")
        print(f"  device HTTP     http://127.0.0.1:{p.device_http}/status")
        print(
            f"  ZVT terminal    socket://127.0.0.1:{p.terminal}  (control API http://127.0.0.1:{p.terminal_api})"
        )
        print(f"  ESC/POS printer tcp://127.0.0.1:{p.printer}  (receipts: {lay.printer_dir})")
        print(f"  camera          tcp://127.0.0.1:{p.camera}  (recordings: {lay.device_dir / 'video'})")
        print(f"  GPS (NMEA)      {lay.gps_link}")
        print(f"  charger         {lay.power_dir}  (patrol-sim power --root {lay.power_dir} dock)")
        print(f"  configs, data   {lay.root}   logs: {logs}")
        if not args.no_stop:
            print("A traffic stop:", flush=True)
            number = traffic_stop(lay, env, tools_log)
            print(f"  review it at    http://127.0.0.1:{p.http}/review/protocols/{number}", flush=True)
        print("Press Ctrl-C to stop.", flush=True)
        began = time.monotonic()
        deadline = began + args.duration if args.duration else None
        docked = False
        last_report = 0.0
        while deadline is None or time.monotonic() < deadline:
            for child in started:
                if child.proc is not None and child.proc.poll() is not None:
                    print(
                        f"{child.name} exited with code {child.proc.returncode}; see {child.log_path}",
                        flush=True,
                    )
                    return 1
            if args.dock_after >= 0 and not docked and time.monotonic() - began >= args.dock_after:
                power(lay, "dock", env, tools_log)
                docked = True
                print("device docked on its charger: upload starts", flush=True)
            if time.monotonic() - last_report >= args.report_every:
                last_report = time.monotonic()
                with contextlib.suppress(OSError, ValueError):
                    st = device_status(lay)
                    up = st.get("upload") or {}
                    assert isinstance(up, dict)
                    print(
                        f"status: outbox pending {st.get('outbox_pending')}, segments pending upload "
                        f"{up.get('pending_segments')}, uploaded {up.get('confirmed_segments')}",
                        flush=True,
                    )
            time.sleep(0.5)
    except StopRequested:
        pass
    except (RuntimeError, TimeoutError) as exc:
        print(f"demo failed: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        signals.hold()
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
    run.add_argument("--no-stop", action="store_true", help="do not run the scripted traffic stop")
    run.add_argument("--dock-after", type=float, default=60, help="dock the device after N s (-1 = never)")
    run.add_argument("--report-every", type=float, default=10, help="print the device status every N s")
    run.set_defaults(handler=cmd_run)
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    return int(args.handler(args))


if __name__ == "__main__":
    raise SystemExit(main())
