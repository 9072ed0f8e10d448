"""The embedded MQTT broker (amqtt) for the demo and laptops; production uses Mosquitto (see deploy/mosquitto).

It enforces what ``deploy/mosquitto/`` does:

- **accounts**: a CONNECT needs a known username and its password (``server.mqtt_accounts``: the devices
  from provisioning, the ingest account, or a Mosquitto password file); anonymous clients are refused;
- **the ACL**: the same ``patrolkit.acl`` file, enforced on every publish, subscription and delivery
  (``server.mqtt_acl``): a device reads and writes only its own topics;
- **client ids**: a device account must connect with its own username as client id (Mosquitto's
  ``use_username_as_clientid`` on the device listener), and no account may take over a client id whose
  session belongs to a service account (the ingest's): a device can neither kick the ingest off nor
  inherit its session.

amqtt 0.12.1 (pinned) touches an existing session under a client id (deletes it for a clean session, takes
over a connected one) before it authenticates the CONNECT. ``GuardedBroker`` authenticates first and only
then lets amqtt do so, never lets an account reuse another account's session, and sends retained messages
only where the ACL lets them be read. The broker listens on loopback unless told otherwise. The sync protocol
does not rely on the broker keeping anything.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.errors import AMQTTError, MQTTError, NoDataError
from amqtt.mqtt.connack import NOT_AUTHORIZED, ConnackPacket
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import sessionmaker

from core.structured_log import log_event
from server.config import ServerConfig
from server.mqtt_accounts import Accounts, DeviceAccounts, PasswordFile, ServiceAccount
from server.mqtt_acl import PACKAGED_ACL, Acl

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Gate:
    """Who may connect (``accounts``) and what each may do (``acl``); ``services`` are the ACL's named
    users (``ingest-svc``), every other account is a device."""

    accounts: Accounts
    acl: Acl

    @property
    def services(self) -> frozenset[str]:
        return self.acl.named_users

    def refusal(self, session: Session, holder: Session | None) -> str | None:
        """Why this CONNECT is refused, or None. ``holder``: the session that already has its client id."""
        user, client_id = session.username, session.client_id or ""
        if not user:
            return "anonymous clients are refused"
        if not self.accounts.check(user, session.password):
            return f"bad username or password for {user!r}"
        if user not in self.services and client_id != user:
            return f"device account {user!r} must connect with its own name as client id, not {client_id!r}"
        if holder is not None and holder.username != user and holder.username in self.services:
            return f"client id {client_id!r} belongs to the service account {holder.username!r}"
        return None


class GateAuthPlugin(BaseAuthPlugin):
    """amqtt's authentication hook: accounts and client ids (``Gate.refusal``)."""

    @dataclass
    class Config:
        gate: Any = None

    async def authenticate(self, *, session: Session) -> bool | None:
        gate: Gate = self.context.config.gate
        holder = self.context.get_session(session.client_id) if session.client_id else None
        if holder is session:
            holder = None
        why = await asyncio.to_thread(gate.refusal, session, holder)
        if why is not None:
            log_event(log, "mqtt.broker.refused", client_id=str(session.client_id)[:64], reason=why)
        return why is None


class GateTopicPlugin(BaseTopicPlugin):
    """amqtt's topic hook: the ACL on every publish, subscription and delivery."""

    @dataclass
    class Config:
        gate: Any = None

    async def topic_filtering(
        self, *, session: Session | None = None, topic: str | None = None, action: Action | None = None
    ) -> bool | None:
        gate: Gate = self.context.config.gate
        if session is None or topic is None:
            return False
        client_id = session.client_id or ""
        if action == Action.SUBSCRIBE:
            return gate.acl.may_subscribe(session.username, client_id, topic)
        if action == Action.PUBLISH:
            return gate.acl.may(session.username, client_id, "write", topic)
        return gate.acl.may(session.username, client_id, "read", topic)


class GuardedBroker(Broker):
    """amqtt's broker with the CONNECT authenticated before any existing session is touched, and a session
    reused only by the account that made it (see the module docstring). It also knows its clients'
    connections, so that a shutdown can close every one of them (``close_streams``)."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._streams: set[asyncio.StreamWriter] = set()

    async def stream_connected(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, listener_name: str
    ) -> None:
        self._streams.add(writer)
        try:
            await super().stream_connected(reader, writer, listener_name)
        finally:
            self._streams.discard(writer)

    def close_streams(self) -> int:
        """Drop every client connection still open; return how many. amqtt's shutdown stops the sessions it
        holds, but not a connection still in its CONNECT (one accepted as the shutdown began) nor one whose
        handler it gave up on, and closing the listeners leaves accepted connections open: such a client would
        notice that its broker is gone only when its keepalive runs out, a minute later."""
        left = list(self._streams)
        for writer in left:
            writer.transport.abort()
        self._streams.clear()
        return len(left)

    async def _initialize_client_session(
        self, reader: Any, writer: Any, remote_address: str, remote_port: int
    ) -> tuple[BrokerProtocolHandler, Session]:
        try:
            handler, session = await BrokerProtocolHandler.init_from_connect(
                reader, writer, self.plugins_manager
            )
        except (AMQTTError, NoDataError) as exc:
            raise AMQTTError(exc) from exc
        except MQTTError as exc:
            await writer.close()
            raise MQTTError(exc) from exc
        if not await self._authenticate(session, None):
            await ConnackPacket.build(0, NOT_AUTHORIZED).to_stream(writer)
            await writer.close()
            raise AMQTTError(f"connection from {remote_address}:{remote_port} refused")
        existing = self._sessions.get(session.client_id or "", (None, None))[0]
        if existing is not None and existing.username != session.username:
            await self._delete_session(session.client_id)  # never inherit another account's session
        if session.clean_session:
            if session.client_id:
                await self._delete_session(session.client_id)
            else:
                from amqtt.utils import gen_client_id

                session.client_id = gen_client_id()
            session.parent = 0
        elif session.client_id in self._sessions:
            old, _ = self._sessions[session.client_id]
            old.will_flag, old.will_message = session.will_flag, session.will_message
            old.will_topic, old.will_qos = session.will_topic, session.will_qos
            old.keep_alive, old.username, old.password = (
                session.keep_alive,
                session.username,
                session.password,
            )
            session = old
            session.parent = 1
        else:
            session.parent = 0
        delay = self.config.get("timeout-disconnect-delay", 0)
        if session.keep_alive > 0 and isinstance(delay, int):
            session.keep_alive += delay
        return handler, session

    async def _publish_retained_messages_for_subscription(
        self, subscription: tuple[str, int], session: Session
    ) -> None:
        """amqtt sends retained messages to a new subscription unchecked: only those the ACL lets it read."""
        topic_filter, qos = subscription
        handler = self._get_handler(session)
        for topic, retained in list(self._retained_messages.items()):
            readable = self._matches(topic, topic_filter) and await self._topic_filtering(
                session, topic, Action.RECEIVE
            )
            if handler is not None and readable:
                await handler.mqtt_publish(topic, retained.data, min(qos, retained.qos or qos), retain=True)


def broker_config(host: str, port: int, gate: Gate) -> dict[str, Any]:
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}", "max_connections": 10000}},
        "plugins": {
            f"{__name__}.GateAuthPlugin": {"gate": gate},
            f"{__name__}.GateTopicPlugin": {"gate": gate},
        },
    }


async def serve(host: str, port: int, stop: asyncio.Event, gate: Gate) -> None:
    """Run the broker on host:port until ``stop`` is set."""
    broker = GuardedBroker(broker_config(host, port, gate))
    await broker.start()
    log.info("mqtt.broker.started", extra={"event": "mqtt.broker.started", "bind": f"{host}:{port}"})
    try:
        await stop.wait()
    finally:
        await _shut_down(broker)


SHUTDOWN_S = 10.0


async def _shut_down(broker: GuardedBroker) -> None:
    """amqtt's shutdown stops each client's handler in turn, and one can wait forever for a client that does
    not answer; after ``SHUTDOWN_S`` its listeners are closed anyway, so the port is free for a restart. Last,
    every client connection still open is dropped, so each client sees the broker gone at once."""
    try:
        await asyncio.wait_for(broker.shutdown(), SHUTDOWN_S)
    except TimeoutError:
        log.warning("mqtt.broker.shutdown_timeout", extra={"event": "mqtt.broker.shutdown_timeout"})
        for server in list(broker._servers.values()):
            await server.close_instance()
    finally:
        dropped = broker.close_streams()
        if dropped:
            log_event(log, "mqtt.broker.connections_dropped", connections=dropped)


def start_in_thread(host: str, port: int, gate: Gate) -> tuple[threading.Thread, Callable[[], None]]:
    """Run the broker on its own event loop thread; returns the thread and a stop callable."""
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    started = threading.Event()

    def _run() -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(started.set)
        try:
            loop.run_until_complete(serve(host, port, stop, gate))
        except Exception:
            log.exception("mqtt.broker.failed", extra={"event": "mqtt.broker.failed"})

    thread = threading.Thread(target=_run, name="mqtt-broker", daemon=True)
    thread.start()
    started.wait(5)

    def _stop() -> None:
        loop.call_soon_threadsafe(stop.set)

    return thread, _stop


def start_embedded(
    config: ServerConfig, sessions: sessionmaker[OrmSession]
) -> tuple[threading.Thread, Callable[[], None]]:
    """The server's own broker (``mqtt.embedded``) on ``mqtt.bind`` (loopback by default) and the port of
    ``mqtt.url``: the devices of the server database and the ingest account (``mqtt.username``/``password``)."""
    port = urlparse(config.mqtt.url).port or 1883
    if config.mqtt.password is None:
        raise ValueError("the embedded broker needs the ingest account's password (mqtt.password)")
    accounts = Accounts(
        [ServiceAccount(config.mqtt.username, config.mqtt.password), DeviceAccounts(sessions)]
    )
    return start_in_thread(config.mqtt.bind, port, Gate(accounts, Acl.load()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the embedded amqtt broker with Mosquitto's files.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument(
        "--password-file", required=True, type=Path, help="Mosquitto password file (read again when changed)"
    )
    parser.add_argument("--acl-file", type=Path, default=PACKAGED_ACL, help="Mosquitto acl_file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    gate = Gate(Accounts([PasswordFile(args.password_file)]), Acl.load(args.acl_file))

    async def _run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await serve(args.host, args.port, stop, gate)

    asyncio.run(_run())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
