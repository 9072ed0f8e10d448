"""An idle sender stays cheap: a step reads the outbox only when something was committed to the device's
database since it last looked (SQLite's ``data_version``), and a record queued meanwhile is still sealed on
the next step."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session
from sync_harness import SyncRig, fill_outbox

from core.sync.signing import KeyRing, Verifier
from edge.sync import sender as sender_module
from edge.sync.sender import SenderSettings, SyncSender


def test_idle_steps_do_not_read_the_outbox_and_a_new_record_is_still_sealed(
    rig: SyncRig, monkeypatch: pytest.MonkeyPatch
) -> None:
    sender = SyncSender(
        SenderSettings(mqtt_url=rig.mqtt_url, device_id=rig.dev.device_id),  # never started: steps by hand
        rig.device,
        rig.signer,
        KeyRing([Verifier(rig.server_signer.public_raw())]),
    )
    reads: list[int] = []
    read = sender_module.max_seq

    def counted(session: Session) -> int:
        reads.append(read(session))
        return reads[-1]

    monkeypatch.setattr(sender_module, "max_seq", counted)
    try:
        sender.step()  # the first step looks
        for _ in range(20):
            sender.step()
        idle_reads = len(reads)
        assert idle_reads <= 2, f"{idle_reads} outbox reads in 21 idle steps"
        fill_outbox(rig.device, 5)  # another connection commits new records
        sender.step()
        assert sender._sealed_upto == 5 and len(reads) > idle_reads
    finally:
        sender._close_watch()
