"""The evidence package: exported from the stop page or the command line, unpacked, and checked with exactly the
commands of its VERIFY.txt, run with the system's sha256sum and openssl. Untouched, every command passes; a
changed byte anywhere (a segment, a signed entry, a signature, a receipt, a record) makes one fail."""

from __future__ import annotations

import getpass
import io
import json
import shlex
import shutil
import subprocess
import zipfile
from pathlib import Path
from urllib.parse import quote

import pytest
from PIL import Image
from sqlalchemy import select

from core.receipt_code import receipt_url
from server.cli import main
from server.db.supervisors import AccessAudit

from .conftest import DEVICE, NUMBER, STARTS, Workspace, receipt_code
from .footage_support import Shift

PAGE = f"/review/protocols/{quote(NUMBER, safe='')}"
TOOLS = ("sha256sum", "openssl")
NEEDS_TOOLS = pytest.mark.skipif(
    any(shutil.which(t) is None for t in TOOLS),
    reason="the evidence check needs sha256sum and openssl: apt-get install coreutils openssl",
)


def commands_of(folder: Path) -> list[list[str]]:
    """The command lines of VERIFY.txt (the lines under COMMANDS, to the first blank one), split as a shell would."""
    lines = (folder / "VERIFY.txt").read_text(encoding="utf-8").splitlines()
    start = lines.index("COMMANDS") + 1
    end = lines.index("", start) if "" in lines[start:] else len(lines)
    commands = [shlex.split(line) for line in lines[start:end]]
    assert commands and all(c[0] in TOOLS for c in commands), commands
    return commands


def run_all(folder: Path) -> list[subprocess.CompletedProcess[str]]:
    return [subprocess.run(c, cwd=folder, capture_output=True, text=True, timeout=60) for c in commands_of(folder)]


def unpack(data: bytes, folder: Path) -> Path:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        archive.extractall(folder)
    return folder


def _export_from_page(ws: Workspace) -> bytes:
    assert ws.login("anna") == 303
    response = ws.client.post(f"{PAGE}/export", data={"csrf": ws.csrf(PAGE)})
    assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
    assert response.headers["content-disposition"].startswith('attachment; filename="evidence-KZ-2026-001234_1')
    return response.content


@NEEDS_TOOLS
@pytest.mark.parametrize("ws", ["filesystem", "s3"], indirect=True)
def test_the_package_verifies_with_its_own_commands_and_any_changed_byte_fails_them(
    ws: Workspace, shift: Shift, tmp_path: Path
) -> None:
    folder = unpack(_export_from_page(ws), tmp_path / "evidence")
    results = run_all(folder)
    assert all(r.returncode == 0 for r in results), [(r.args, r.stdout, r.stderr) for r in results if r.returncode]
    signature_checks = [r for r in results if r.args[0] == "openssl"]
    assert len(signature_checks) == len(STARTS) + 1, "every segment's entry and the receipt's QR code"
    assert all("Signature Verified Successfully" in r.stdout for r in signature_checks)
    for entry, original in zip(shift.entries, shift.files, strict=True):
        exported = folder / "segments" / DEVICE / f"{entry.seq:010d}.mp4"
        assert exported.read_bytes() == original.read_bytes(), "the device's file, byte for byte"

    targets = [
        f"segments/{DEVICE}/0000000003.mp4",
        f"manifest/{DEVICE}/0000000002.json",
        f"manifest/{DEVICE}/0000000004.sig",
        "receipts/copy-1.png",
        "records/protocol.json",
        "manifest/segment-hashes.sha256",
        "receipts/verify-code.msg",
    ]
    for target in targets:
        copy = tmp_path / f"tampered-{target.replace('/', '_')}"
        shutil.copytree(folder, copy)
        path = copy / target
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
        failed = [r for r in run_all(copy) if r.returncode != 0]
        assert failed, f"a changed byte in {target} went unnoticed"


@pytest.mark.parametrize("ws", ["filesystem", "s3"], indirect=True)
def test_the_package_holds_the_records_receipts_keys_and_the_audit_of_the_stop(ws: Workspace, tmp_path: Path) -> None:
    folder = unpack(_export_from_page(ws), tmp_path / "evidence")
    protocol = json.loads((folder / "records/protocol.json").read_text())
    assert protocol["number"] == NUMBER and protocol["driver_name"] == "Жанболатов Арман"
    attempts = json.loads((folder / "records/payment_attempts.json").read_text())
    assert [a["state"] for a in attempts] == ["paid"] and attempts[0]["card_read_at"].startswith("2026-03-02T09:10:03")
    assert len(json.loads((folder / "records/own_card_checks.json").read_text())) == 1
    assert [e["copy_no"] for e in json.loads((folder / "records/receipt_events.json").read_text())] == [1, 2]
    assert json.loads((folder / "records/recording_gaps.json").read_text())[0]["reason"] == "power_loss"
    assert (folder / f"device-keys/{DEVICE}.pem").read_text().startswith("-----BEGIN PUBLIC KEY-----")
    audit = json.loads((folder / "audit/access-audit.json").read_text())
    assert "evidence.export" in [a["action"] for a in audit] and all(a["row_hash"] for a in audit)
    from simulators.printer.virtual_printer import decode_qr

    for copy_no in (1, 2):
        image = Image.open(folder / f"receipts/copy-{copy_no}.png")
        assert image.width == 608 and image.height > 1000
        assert decode_qr(image.convert("1")) == receipt_url(ws.config.http.public_url, receipt_code(ws.shift.identity)), (
            "the QR carries the code the device signed"
        )
    with ws.sessions() as session:
        exports = session.scalars(select(AccessAudit).where(AccessAudit.action == "evidence.export")).all()
    assert [(e.supervisor_login, e.protocol_number) for e in exports] == [("anna", NUMBER)]


def _config(tmp_path: Path, db_url: str, video: Path) -> str:
    path = tmp_path / "server.toml"
    path.write_text(f'[database]\nurl = "{db_url}"\n[storage]\nvideo_dir = "{video}"\n', encoding="utf-8")
    return str(path)


@NEEDS_TOOLS
def test_the_command_line_exports_a_stop_or_any_range_of_a_device_and_audits_it(
    ws: Workspace, server_db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, server_db_url, ws.store.root)
    out = tmp_path / "stop.zip"
    assert main(["--config", config, "evidence", "export", NUMBER, "--out", str(out)]) == 0
    assert "5 segment(s)" in capsys.readouterr().out
    stop = unpack(out.read_bytes(), tmp_path / "stop")
    assert all(r.returncode == 0 for r in run_all(stop))
    ranged = tmp_path / "range.zip"
    assert main(["--config", config, "evidence", "export", "--device", DEVICE, "--from", "2026-03-02T14:10:01+05:00",
                 "--to", "2026-03-02T14:11:07+05:00", "--out", str(ranged)]) == 0  # fmt: skip
    folder = unpack(ranged.read_bytes(), tmp_path / "range")
    assert sorted(p.name for p in (folder / "segments" / DEVICE).iterdir()) == [
        "0000000001.mp4", "0000000002.mp4", "0000000003.mp4", "0000000004.mp4",
    ], "the segments overlapping 09:10:01-09:11:07 UTC"  # fmt: skip
    assert all(r.returncode == 0 for r in run_all(folder))
    with ws.sessions() as session:
        rows = session.scalars(select(AccessAudit).where(AccessAudit.action == "evidence.export")
                               .order_by(AccessAudit.id)).all()  # fmt: skip
    assert [(r.supervisor_login, r.protocol_number, r.device_id) for r in rows] == [
        (f"cli:{getpass.getuser()}", NUMBER, None), (f"cli:{getpass.getuser()}", None, DEVICE),
    ]  # fmt: skip
    assert all(r.supervisor_id is None for r in rows)


def test_nothing_to_export_is_an_error_that_says_so_and_leaves_no_file(
    ws: Workspace, server_db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, server_db_url, ws.store.root)
    out = tmp_path / "none.zip"
    assert main(["--config", config, "evidence", "export", "KZ-NO-SUCH", "--out", str(out)]) == 1
    assert "no protocol KZ-NO-SUCH" in capsys.readouterr().err and not out.exists()
    assert main(["--config", config, "evidence", "export", "--device", DEVICE, "--from", "2026-03-02T09:00:00",
                 "--to", "2026-03-02T10:00:00Z", "--out", str(out)]) == 1  # fmt: skip
    assert "offset" in capsys.readouterr().err and not out.exists()
    with ws.sessions() as session:
        assert session.scalar(select(AccessAudit.id).where(AccessAudit.action == "evidence.export")) is None


