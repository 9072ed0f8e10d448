"""Officers' PINs, the lockout and sessions on an injected clock (no waiting): only an argon2 hash is stored,
five wrong PINs lock that badge for 15 minutes and a restart does not reset the count, a session locks after
the idle time and ends after a shift; ``patrol-edge officer add --pin`` sets a PIN the app accepts."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.clock import FakeClock
from edge.db.base import transaction
from edge.db.officer_app import OfficerSession
from edge.db.protocols import Officer
from edge.officer_app.accounts import AccountPolicy, Accounts, PinError, hash_pin

BIN = Path(sys.executable).parent


@pytest.fixture
def accounts(device_sessions: sessionmaker[Session], fake_clock: FakeClock) -> Accounts:
    with transaction(device_sessions) as s:
        s.add(Officer(badge="B-9", full_name="Тест Офицер", unit="", pin_hash=hash_pin("4321"), language="kk",
                      pin_failures=0))  # fmt: skip
    return Accounts(device_sessions, fake_clock, AccountPolicy())


def test_only_an_argon2id_hash_is_stored_and_bad_pins_are_refused(device_sessions: sessionmaker[Session], accounts: Accounts) -> None:
    with device_sessions() as s:
        stored = s.get(Officer, "B-9")
        assert stored is not None and stored.pin_hash is not None
    assert stored.pin_hash.startswith("$argon2id$") and "4321" not in stored.pin_hash
    for bad in ("", "123", "123456789", "12a4", "١٢٣٤"):
        with pytest.raises(PinError):
            hash_pin(bad)


def test_five_wrong_pins_lock_the_badge_and_the_count_survives_a_restart(
    device_sessions: sessionmaker[Session], fake_clock: FakeClock, accounts: Accounts
) -> None:
    assert [accounts.sign_in("B-9", "0000").tries_left for _ in range(3)] == [4, 3, 2]
    again = Accounts(device_sessions, fake_clock, AccountPolicy())  # a restarted device process
    assert again.sign_in("B-9", "0000").tries_left == 1
    locked = again.sign_in("B-9", "0000")
    assert locked.outcome == "locked" and locked.locked_until == fake_clock.now() + timedelta(minutes=15)
    assert again.sign_in("B-9", "4321").outcome == "locked"
    fake_clock.advance(15 * 60 - 1)
    assert again.sign_in("B-9", "4321").outcome == "locked"
    fake_clock.advance(1)
    assert again.sign_in("B-9", "4321").outcome == "ok"
    assert again.sign_in("B-9", "0000").tries_left == 4  # a good PIN starts the count afresh


def test_session_locks_when_idle_unlocks_with_the_pin_and_ends_after_a_shift(
    device_sessions: sessionmaker[Session], fake_clock: FakeClock, accounts: Accounts
) -> None:
    token = accounts.sign_in("B-9", "4321").token
    assert token is not None
    with device_sessions() as s:
        assert s.scalar(select(OfficerSession.token_sha256)) != token  # only the token's hash is kept
    fake_clock.advance(119)
    view = accounts.session(token, touch=True)
    assert view is not None and not view.locked and view.language == "kk"
    fake_clock.advance(119)
    assert not accounts.session(token, touch=False).locked  # type: ignore[union-attr]
    fake_clock.advance(2)  # 121 s since the last request by the officer
    assert accounts.session(token, touch=True).locked  # type: ignore[union-attr]
    assert accounts.unlock(token, "1111").outcome == "wrong"
    assert accounts.unlock(token, "4321").outcome == "ok"
    assert not accounts.session(token, touch=True).locked  # type: ignore[union-attr]
    fake_clock.advance(12 * 3600 + 1)
    assert accounts.session(token, touch=True) is None
    assert accounts.session("made-up", touch=True) is None and accounts.session("x" * 500, touch=True) is None


def test_officer_add_with_pin_stores_a_hash_the_app_accepts(tmp_path: Path, fake_clock: FakeClock) -> None:
    from edge.db.base import make_engine, make_sessionmaker

    config = tmp_path / "edge.toml"
    config.write_text(f'[device]\ndata_dir = "{tmp_path}"\n', encoding="utf-8")
    done = subprocess.run(
        [str(BIN / "patrol-edge"), "--config", str(config), "officer", "add", "KZ-1", "Ержан Сейтқали",
         "--pin", "--language", "kk"],
        input="2580\n", capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "with a PIN" in done.stdout and "2580" not in done.stdout
    refused = subprocess.run(
        [str(BIN / "patrol-edge"), "--config", str(config), "officer", "add", "KZ-2", "X", "--pin"],
        input="12\n", capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert refused.returncode == 1 and "4 to 8 digits" in refused.stdout
    engine = make_engine(f"sqlite:///{tmp_path / 'device.db'}")
    try:
        accounts = Accounts(make_sessionmaker(engine), fake_clock, AccountPolicy())
        assert accounts.sign_in("KZ-1", "2580").outcome == "ok"
        assert accounts.sign_in("KZ-2", "12").outcome == "wrong"
    finally:
        engine.dispose()
