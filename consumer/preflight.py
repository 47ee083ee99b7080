"""Checks before the service starts: one connection to the broker for TLS trust and SASL
credentials (a wrong CA or password would otherwise be retried forever, with a log line
every few seconds; either stops start-up with one clear line), and a wait for a broker
that is merely unreachable (the service waits for it, and /readyz says so)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from typing import TYPE_CHECKING

from aiokafka.client import AIOKafkaClient
from aiokafka.conn import create_conn
from aiokafka.errors import KafkaConnectionError, KafkaError, UnsupportedSaslMechanismError

from consumer.errors import SettingsError
from consumer.settings import SecurityProtocol, env_name

if TYPE_CHECKING:
    from collections.abc import Callable

    from consumer.settings import Settings

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0
BROKER_RETRY_S = (0.5, 1.0, 2.0, 5.0)
_TLS = {SecurityProtocol.SSL, SecurityProtocol.SASL_SSL}


async def check_broker_access(settings: Settings) -> None:
    """Connect to the first bootstrap server as every client will; raise `SettingsError`
    when TLS or SASL is refused."""
    if settings.security_protocol is SecurityProtocol.PLAINTEXT:
        return
    first = settings.bootstrap_servers.split(",")[0].strip()
    host, _, port = first.rpartition(":")
    options = settings.kafka_client_options()
    options.pop("bootstrap_servers")
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            conn = await create_conn(host, int(port), **options)
    except ssl.SSLCertVerificationError as exc:
        raise SettingsError(
            f"TLS: the broker at {first} sent a certificate that is not trusted "
            f"({_trusted(settings)}): {exc.verify_message}"
        ) from exc
    except ssl.SSLError as exc:
        raise SettingsError(f"TLS: the handshake with the broker at {first} failed: {exc}") from exc
    except UnsupportedSaslMechanismError as exc:
        raise SettingsError(
            f"SASL: the broker at {first} does not offer {settings.sasl_mechanism} "
            f"({env_name('sasl_mechanism')})"
        ) from exc
    except (OSError, TimeoutError) as exc:
        log.warning(
            "broker not reachable yet: %s",
            exc,
            extra={"event": "preflight_unreachable", "bootstrap": first},
        )
        return
    except (KafkaError, KeyError, ValueError) as exc:
        if settings.sasl_mechanism is None:
            raise
        # aiokafka reads a refused SCRAM login as a final message without its verifier.
        detail = (
            "the final SCRAM message has no server signature (unknown user or wrong password)"
            if isinstance(exc, KeyError)
            else str(exc)
        )
        raise SettingsError(
            f"SASL: the broker at {first} refused {settings.sasl_mechanism} authentication "
            f"as {settings.sasl_plain_username!r} ({env_name('sasl_plain_username')}, "
            f"{env_name('sasl_plain_password')}): {detail}"
        ) from exc
    with contextlib.suppress(Exception):
        conn.close()


def _trusted(settings: Settings) -> str:
    if settings.ssl_cafile is None:
        return f"the system's CAs; set {env_name('ssl_cafile')} to the broker's CA"
    return f"{env_name('ssl_cafile')}={settings.ssl_cafile}"


async def wait_for_broker(
    settings: Settings, stopping: asyncio.Event, unreachable: Callable[[str], None]
) -> bool:
    """Return once a bootstrap server answers (True), or when `stopping` is set first
    (False); meanwhile tell `unreachable` why, and log it once."""
    attempt = 0
    while not stopping.is_set():
        client = AIOKafkaClient(**settings.kafka_client_options())
        try:
            await client.bootstrap()
        except KafkaConnectionError as exc:
            if attempt == 0:
                log.warning(
                    "waiting for the broker at %s: %s",
                    settings.bootstrap_servers,
                    exc,
                    extra={"event": "broker_unreachable"},
                )
            unreachable(str(exc))
        else:
            return True
        finally:
            await client.close()
        delay = BROKER_RETRY_S[min(attempt, len(BROKER_RETRY_S) - 1)]
        attempt += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), delay)
    return False
