"""The service's settings: every field is an `EXPORT_*` variable and a `--flag`."""

from __future__ import annotations

import ssl
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, FilePath, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from consumer.errors import SettingsError

if TYPE_CHECKING:
    from collections.abc import Mapping

ENV_PREFIX = "EXPORT_"

DEFAULT_BOOTSTRAP_SERVERS = "127.0.0.1:9092"
DEFAULT_GROUP_ID = "export-consumer"
DEFAULT_REQUEST_TOPIC = "export.requests"
DEFAULT_RESULT_TOPIC = "export.results"
DEFAULT_DLQ_TOPIC = "export.requests.dlq"
DEFAULT_OUTPUT_DIR = Path("./exports")
DEFAULT_MAX_IN_FLIGHT = 5
DEFAULT_TIMEOUT_S = 300.0
DEFAULT_METRICS_HOST = "0.0.0.0"  # noqa: S104 - scraped from other hosts by design
DEFAULT_METRICS_PORT = 9400
DEFAULT_SHUTDOWN_GRACE_S = 30.0
DEFAULT_SESSION_TIMEOUT_MS = 10_000
DEFAULT_HEARTBEAT_INTERVAL_MS = 3_000
DEFAULT_PDF_MAX_PAGES = 5_000
DEFAULT_MAX_BATCH_BYTES = 8 * 1024 * 1024


class SecurityProtocol(StrEnum):
    """aiokafka's `security_protocol` values."""

    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"


class SaslMechanism(StrEnum):
    """aiokafka's `sasl_mechanism` values that take a user name and password."""

    PLAIN = "PLAIN"
    SCRAM_SHA_256 = "SCRAM-SHA-256"
    SCRAM_SHA_512 = "SCRAM-SHA-512"


class LogLevel(StrEnum):
    """Levels accepted by `EXPORT_LOG_LEVEL`."""

    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


class Settings(BaseSettings):
    """Everything the service reads from its environment, validated at start-up."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    bootstrap_servers: str = Field(DEFAULT_BOOTSTRAP_SERVERS, min_length=1)
    """Comma-separated `host:port` list of brokers."""
    group_id: str = Field(DEFAULT_GROUP_ID, min_length=1)
    """Consumer group on the request topic; instances with one id share the work."""
    request_topic: str = Field(DEFAULT_REQUEST_TOPIC, min_length=1)
    result_topic: str = Field(DEFAULT_RESULT_TOPIC, min_length=1)
    dlq_topic: str = Field(DEFAULT_DLQ_TOPIC, min_length=1)
    output_dir: Path = DEFAULT_OUTPUT_DIR
    """Where outputs appear; nothing is written outside it."""
    max_in_flight: int = Field(DEFAULT_MAX_IN_FLIGHT, ge=1, le=1000)
    """Exports that run at once; past that the request partitions are paused."""
    timeout_s: float = Field(DEFAULT_TIMEOUT_S, gt=0)
    """One export's deadline, from the moment it starts."""
    metrics_host: str = DEFAULT_METRICS_HOST
    metrics_port: int = Field(DEFAULT_METRICS_PORT, ge=0, le=65535)
    """0 picks a free port (tests); the chosen one is logged."""
    metrics_max_users: int = Field(50, ge=1, le=10_000)
    """Distinct `user` label values (from untrusted `requested_by`); the rest are `other`."""
    shutdown_grace_s: float = Field(DEFAULT_SHUTDOWN_GRACE_S, ge=0)
    """How long running exports may take to finish after SIGTERM."""
    log_level: LogLevel = LogLevel.INFO

    pdf_font: FilePath | None = None
    """A TTF font for reports; default DejaVu Sans from the system, else reportlab's Vera."""
    pdf_max_pages: int = Field(DEFAULT_PDF_MAX_PAGES, ge=1)
    """A report that would pass this many pages fails with `too_large`."""
    max_batch_bytes: int = Field(DEFAULT_MAX_BATCH_BYTES, ge=1024)
    """A source message larger than this is a bad record, not decoded."""

    enable_idempotence: bool = True
    """Idempotent producer; off for brokers without InitProducerId (the embedded one)."""
    session_timeout_ms: int = Field(DEFAULT_SESSION_TIMEOUT_MS, ge=1000)
    heartbeat_interval_ms: int = Field(DEFAULT_HEARTBEAT_INTERVAL_MS, ge=100)

    security_protocol: SecurityProtocol = SecurityProtocol.PLAINTEXT
    sasl_mechanism: SaslMechanism | None = None
    sasl_plain_username: str | None = None
    sasl_plain_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None

    def kafka_client_options(self) -> dict[str, Any]:
        """Keyword arguments shared by every aiokafka client the service creates."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": self.security_protocol.value,
        }
        if self.security_protocol in {SecurityProtocol.SSL, SecurityProtocol.SASL_SSL}:
            context = ssl.create_default_context(
                cafile=str(self.ssl_cafile) if self.ssl_cafile else None
            )
            if self.ssl_certfile:
                context.load_cert_chain(
                    str(self.ssl_certfile), str(self.ssl_keyfile) if self.ssl_keyfile else None
                )
            options["ssl_context"] = context
        if self.sasl_mechanism is not None:
            options["sasl_mechanism"] = self.sasl_mechanism.value
            options["sasl_plain_username"] = self.sasl_plain_username
            if self.sasl_plain_password is not None:
                options["sasl_plain_password"] = self.sasl_plain_password.get_secret_value()
        return options


def flag_name(field: str) -> str:
    """`output_dir` -> `--output-dir`: the flag that sets a field."""
    return "--" + field.replace("_", "-")


def env_name(field: str) -> str:
    """`output_dir` -> `EXPORT_OUTPUT_DIR`: the variable that sets a field."""
    return ENV_PREFIX + field.upper()


def load_settings(flags: Mapping[str, str] | None = None) -> Settings:
    """Settings from flags (by field name) over `EXPORT_*` variables over defaults.

    Raises `SettingsError` with one line naming the flag or variable at fault.
    """
    given: dict[str, Any] = dict(flags or {})
    try:
        return Settings(**given)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "?"
        source = flag_name(field) if field in given else env_name(field)
        raise SettingsError(f"bad setting {source}={first['input']!r}: {first['msg']}") from exc
