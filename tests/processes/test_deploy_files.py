"""The deployment files are valid: every systemd unit in ``deploy/`` parses, names a command that exists and
passes ``systemd-analyze verify`` (with the install paths pointed at this checkout), the timers start their
services, and the reverse-proxy example passes ``nginx -t``."""

from __future__ import annotations

import configparser
import datetime
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
VENV_BIN = Path(sys.executable).parent
UNITS = sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".service", ".timer"))
COMMANDS = {"patrol-server", "patrol-edge", "python", "officer-kiosk"}


def _need(program: str, package: str) -> None:
    """Skip with one line naming the Debian package when ``program`` is missing; under
    ``PATROLKIT_REQUIRE_DEPLOY_TOOLS=1`` (CI) fail instead."""
    if shutil.which(program) is None:
        message = f"{program} is not installed (Debian: {package})"
        if os.environ.get("PATROLKIT_REQUIRE_DEPLOY_TOOLS") == "1":
            pytest.fail(message)
        pytest.skip(message)


def _parsed(path: Path) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text(encoding="utf-8").replace("\\\n", " "))
    return parser


def test_the_deployment_has_every_unit_the_server_and_device_need() -> None:
    names = {p.name for p in UNITS}
    assert {
        "patrol-server.service",
        "patrol-ingest@.service",
        "patrol-fines.service",
        "patrol-fines.timer",
        "patrol-retention.service",
        "patrol-retention.timer",
        "patrol-edge.service",
        "officer-kiosk.service",
    } <= names


@pytest.mark.parametrize("unit", UNITS, ids=[p.name for p in UNITS])
def test_each_unit_parses_and_runs_a_command_of_ours(unit: Path) -> None:
    parsed = _parsed(unit)
    assert parsed.has_section("Unit") and parsed.get("Unit", "Description", fallback="")
    if unit.suffix == ".timer":
        assert parsed.has_section("Timer") and (
            parsed.has_option("Timer", "OnCalendar") or parsed.has_option("Timer", "OnUnitActiveSec")
        )
        assert (unit.parent / unit.name.replace(".timer", ".service")).is_file(), "a timer starts its service"
        return
    exec_start = parsed.get("Service", "ExecStart")
    program = Path(exec_start.split()[0]).name
    assert program in COMMANDS, exec_start
    if program == "patrol-server":
        words = exec_start.split()
        assert words[words.index("--config") + 2] in {"run", "fines", "retention"}, exec_start


def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    _need("systemd-analyze", "systemd")
    for unit in UNITS:
        text = unit.read_text(encoding="utf-8")
        text = text.replace("/opt/patrolkit/.venv/bin", str(VENV_BIN)).replace("/opt/patrolkit", str(ROOT))
        (tmp_path / unit.name.replace("@.", "@1.")).write_text(text, encoding="utf-8")
    files = sorted(str(p) for p in tmp_path.iterdir())
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *files], capture_output=True, text=True, timeout=60
    )
    ours = [line for line in done.stderr.splitlines() if str(tmp_path) in line or ".service" in line]
    assert done.returncode == 0 and not ours, done.stderr


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "patrol.example.kz")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def test_the_reverse_proxy_example_passes_nginx_t(tmp_path: Path) -> None:
    _need("nginx", "nginx-light")
    cert, key = _self_signed(tmp_path)
    site = (DEPLOY / "nginx" / "patrolkit.conf").read_text(encoding="utf-8")
    site = site.replace("/etc/nginx/tls/patrol.example.kz.fullchain.pem", str(cert))
    site = site.replace("/etc/nginx/tls/patrol.example.kz.key", str(key))
    (tmp_path / "patrolkit.conf").write_text(site, encoding="utf-8")
    main = tmp_path / "nginx.conf"
    main.write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log stderr;\nevents {{}}\n"
        f"http {{\n  access_log off;\n  client_body_temp_path {tmp_path}/body;\n"
        f"  include {tmp_path}/patrolkit.conf;\n}}\n",
        encoding="utf-8",
    )
    done = subprocess.run(
        ["nginx", "-t", "-p", str(tmp_path), "-c", str(main)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "test is successful" in done.stderr
