"""NMEA 0183 parsing for the GPS receiver: golden sentences, bad input rejected with a reason, round trips,
and the GPS simulator read through a real pseudo-terminal."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hardware.gps import (
    Gga,
    GpsReceiver,
    NmeaError,
    Rmc,
    checksum,
    format_gga,
    format_rmc,
    parse_sentence,
)
from simulators.gps import GpsSimulator, Track

GOLDEN_RMC = "$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A"
GOLDEN_GGA = "$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47"


def _signed(body: str) -> str:
    return f"${body}*{checksum(body):02X}"


def test_golden_rmc_gives_time_date_and_position() -> None:
    rmc = parse_sentence(GOLDEN_RMC + "\r\n")
    assert isinstance(rmc, Rmc)
    assert rmc.valid and rmc.talker == "GP"
    assert rmc.utc == datetime(1994, 3, 23, 12, 35, 19, tzinfo=UTC)
    assert rmc.latitude == pytest.approx(48.1173)
    assert rmc.longitude == pytest.approx(11.516667, abs=1e-6)
    assert rmc.speed_knots == 22.4 and rmc.course_deg == 84.4


def test_golden_gga_gives_quality_satellites_and_altitude() -> None:
    gga = parse_sentence(GOLDEN_GGA.encode("ascii"))
    assert isinstance(gga, Gga)
    assert (gga.quality, gga.satellites, gga.hdop, gga.altitude_m) == (1, 8, 0.9, 545.4)
    assert gga.latitude == pytest.approx(48.1173)


def test_southern_and_western_hemispheres_are_negative() -> None:
    rmc = parse_sentence(_signed("GNRMC,010203.50,A,3345.000,S,07030.000,W,0.0,0.0,020326,,,A"))
    assert isinstance(rmc, Rmc)
    assert rmc.latitude == pytest.approx(-33.75) and rmc.longitude == pytest.approx(-70.5)
    assert rmc.utc == datetime(2026, 3, 2, 1, 2, 3, 500000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (GOLDEN_RMC[:-2] + "6B", "checksum mismatch"),
        (GOLDEN_RMC[:-3], "no '\\*hh' checksum"),
        (GOLDEN_RMC[1:], "does not start with"),
        ("", "empty"),
        ("$GPRMC*ZZ", "not hexadecimal"),
        ("$" + "A" * 100 + "*00", "characters long"),
        (b"$GPRMC,\xff*00", "not ASCII"),
        (_signed("GPGSV,3,1,11,03,03,111,00"), "unsupported sentence type"),
        (_signed("GPRMC,123519,A,4807.038,N"), "needs at least 11"),
        (_signed("GPRMC,123519,X,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W"), "status"),
        (_signed("GPRMC,123519,A,4867.038,N,01131.000,E,022.4,084.4,230394,003.1,W"), "out of range"),
        (_signed("GPRMC,123519,A,4807.038,Q,01131.000,E,022.4,084.4,230394,003.1,W"), "hemisphere"),
        (_signed("GPRMC,1x3519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W"), "bad UTC time"),
        (_signed("GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,320394,003.1,W"), "bad date"),
        (_signed("GPGGA,123519,4807.038,N,01131.000,E,9,08,0.9,545.4,M,46.9,M,,"), "fix quality"),
        (_signed("GP-GA,123519"), "address"),
    ],
)
def test_bad_sentences_are_rejected_with_the_reason(line: str | bytes, reason: str) -> None:
    with pytest.raises(NmeaError, match=reason):
        parse_sentence(line)


def test_receiver_counts_garbage_and_keeps_the_last_good_fix() -> None:
    now = [100.0]
    receiver = GpsReceiver("loop://", max_age=5.0, monotonic=lambda: now[0])
    assert receiver.feed(GOLDEN_RMC) is not None
    assert receiver.feed("noise \x00\x01") is None
    assert receiver.feed(GOLDEN_RMC[:-2] + "00") is None
    fix = receiver.fix()
    assert fix is not None and fix.latitude == pytest.approx(48.1173)
    assert (receiver.accepted, receiver.rejected) == (1, 2)
    assert receiver.last_error is not None and "checksum" in receiver.last_error
    now[0] += 6.0
    assert receiver.fix() is None, "a fix older than max_age is not shown as current"


def test_void_rmc_and_no_fix_gga_do_not_make_a_position() -> None:
    receiver = GpsReceiver("loop://")
    receiver.feed(_signed("GPRMC,123519,V,4807.038,N,01131.000,E,,,230394,,"))
    receiver.feed(_signed("GPGGA,123519,4807.038,N,01131.000,E,0,00,,,M,,M,,"))
    assert receiver.fix() is None


@given(
    moment=st.datetimes(
        min_value=datetime(1980, 1, 1), max_value=datetime(2079, 12, 31), timezones=st.just(UTC)
    ),
    lat=st.floats(min_value=-89.99, max_value=89.99),
    lon=st.floats(min_value=-179.99, max_value=179.99),
    knots=st.floats(min_value=0, max_value=999),
    course=st.floats(min_value=0, max_value=359.9),
    sats=st.integers(min_value=0, max_value=32),
    alt=st.floats(min_value=-400, max_value=9000),
)
def test_formatted_sentences_parse_back_to_the_same_fix(
    moment: datetime, lat: float, lon: float, knots: float, course: float, sats: int, alt: float
) -> None:
    rmc = parse_sentence(format_rmc(moment, lat, lon, knots, course))
    gga = parse_sentence(format_gga(moment, lat, lon, sats, alt))
    assert isinstance(rmc, Rmc) and isinstance(gga, Gga)
    tolerance = 0.0001 / 60 + 1e-9  # 4 decimals of minutes
    assert rmc.latitude == pytest.approx(lat, abs=tolerance) and gga.latitude == pytest.approx(
        lat, abs=tolerance
    )
    assert rmc.longitude == pytest.approx(lon, abs=tolerance)
    assert gga.longitude == pytest.approx(lon, abs=tolerance)
    assert rmc.utc is not None and abs(rmc.utc - moment) < timedelta(milliseconds=10)
    assert rmc.speed_knots == pytest.approx(knots, abs=0.05) and gga.satellites == sats


def test_simulator_on_a_real_pty_moves_and_the_receiver_follows(tmp_path: Path) -> None:
    sim = GpsSimulator(Track(43.2389, 76.8897, speed_mps=50.0), interval=0.05, link=tmp_path / "gps").start()
    receiver = GpsReceiver(f"{tmp_path / 'gps'}").start()
    try:
        deadline = time.monotonic() + 10
        first = None
        while time.monotonic() < deadline:
            first = receiver.fix()
            if first is not None:
                break
            time.sleep(0.02)
        assert first is not None, "no fix came over the pty"
        assert first.latitude == pytest.approx(43.2389, abs=0.01)
        assert first.utc is not None and abs(first.utc - datetime.now(UTC)) < timedelta(seconds=5)
        assert first.satellites == 9 and first.altitude_m == 420.0
        while time.monotonic() < deadline:
            later = receiver.fix()
            if later is not None and later.latitude > first.latitude:
                break
            time.sleep(0.02)
        else:
            pytest.fail("the track did not move")
        assert receiver.rejected == 0
    finally:
        receiver.stop()
        sim.stop()
