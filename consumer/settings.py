"""The service's settings: every field is an `EXPORT_*` variable, a `--flag` and a key
of the `--config` TOML file; a flag beats a variable, which beats the file."""

from __future__ import annotations

import json
import os
import ssl
import tomllib
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field, FilePath, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

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
DEFAULT_FETCH_MAX_WAIT_MS = 50
DEFAULT_SESSION_TIMEOUT_MS = 10_000
DEFAULT_HEARTBEAT_INTERVAL_MS = 3_000
DEFAULT_PDF_MAX_PAGES = 5_000
DEFAULT_MAX_BATCH_BYTES = 8 * 1024 * 1024
DEFAULT_SOURCE_TOPICS = "*"
DEFAULT_MAX_RECORDS = 50_000_000
DEFAULT_MAX_OUTPUT_BYTES = 10 * 1024**3
DEFAULT_S3_REGION = "us-east-1"
DEFAULT_S3_PRESIGN_S = 3600
MAX_S3_PRESIGN_S = 7 * 24 * 3600
"""SigV4's limit on a presigned URL's lifetime."""
OUTPUT_URL_SCHEMES = ("s3://", "file://")


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


class WindowLookup(StrEnum):
    """`EXPORT_WINDOW_LOOKUP`: how a time window finds its offsets."""

    TIME_INDEX = "time-index"
    """ListOffsets by timestamp: reads only the window's offsets (Apache Kafka)."""
    SCAN = "scan"
    """Each partition from its start to its end, keeping the window's timestamps: for
    brokers whose time index answers wrongly (the embedded Tansu, which `dev` runs)."""


class LogFormat(StrEnum):
    """`EXPORT_LOG_FORMAT`: how log lines are written."""

    AUTO = "auto"
    """JSON lines when stderr is not a terminal; at a terminal, lines for people (and
    `dev` writes the JSON lines to a file whose path it prints)."""
    JSON = "json"
    TEXT = "text"


class LogLevel(StrEnum):
    """Levels accepted by `EXPORT_LOG_LEVEL`."""

    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


class Settings(BaseSettings):
    """Everything the service reads from its environment, validated at start-up."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")
    file_values: ClassVar[dict[str, Any]] = {}
    """The `--config` file's settings; set on a subclass made per file (`load_settings`)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,  # noqa: ARG003 - no .env files
        file_secret_settings: PydanticBaseSettingsSource,  # noqa: ARG003 - nor secret dirs
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Flags (passed as arguments) over variables over the file over defaults."""
        return init_settings, env_settings, InitSettingsSource(settings_cls, cls.file_values)

    bootstrap_servers: str = Field(DEFAULT_BOOTSTRAP_SERVERS, min_length=1)
    """Comma-separated `host:port` list of brokers."""
    group_id: str = Field(DEFAULT_GROUP_ID, min_length=1)
    """Consumer group on the request topic; instances with one id share the work."""
    request_topic: str = Field(DEFAULT_REQUEST_TOPIC, min_length=1)
    result_topic: str = Field(DEFAULT_RESULT_TOPIC, min_length=1)
    dlq_topic: str = Field(DEFAULT_DLQ_TOPIC, min_length=1)
    output_dir: Path = DEFAULT_OUTPUT_DIR
    """Where outputs appear; nothing is written outside it."""
    output_url: str | None = None
    """`s3://bucket/prefix` for object storage; unset: `file://` + `output_dir`."""
    s3_endpoint_url: str | None = None
    """Any S3-compatible endpoint (`http://127.0.0.1:8333`); unset: AWS."""
    s3_region: str = Field(DEFAULT_S3_REGION, min_length=1)
    s3_access_key_id: str | None = None
    """With the secret below; unset: the standard AWS credential chain."""
    s3_secret_access_key: SecretStr | None = None
    s3_presign_s: int = Field(DEFAULT_S3_PRESIGN_S, ge=0, le=MAX_S3_PRESIGN_S)
    """Lifetime of the download link in each completed result; 0: no link."""
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
    log_format: LogFormat = LogFormat.AUTO

    pdf_font: FilePath | None = None
    """A TTF font for reports; default DejaVu Sans from the system, else reportlab's Vera."""
    pdf_max_pages: int = Field(DEFAULT_PDF_MAX_PAGES, ge=1)
    """A report that would pass this many pages fails with `too_large`."""
    max_batch_bytes: int = Field(DEFAULT_MAX_BATCH_BYTES, ge=1024)
    """A source message larger than this is a bad record, not decoded."""
    source_topics: str = Field(DEFAULT_SOURCE_TOPICS, min_length=1)
    """Comma-separated glob patterns of the topics a request may read; internal topics
    (`__*`) and the service's own topics are never readable (`consumer.topic_access`)."""
    max_records: int = Field(DEFAULT_MAX_RECORDS, ge=1)
    """An export past this many records fails `too_large`."""
    max_output_bytes: int = Field(DEFAULT_MAX_OUTPUT_BYTES, ge=1)
    """An export whose output passes this many bytes fails `too_large`."""

    window_lookup: WindowLookup = WindowLookup.TIME_INDEX
    """How time windows find their offsets; `dev` scans (see `WindowLookup`)."""
    enable_idempotence: bool = True
    """Idempotent producer; off for brokers without InitProducerId (the embedded one)."""
    fetch_max_wait_ms: int = Field(DEFAULT_FETCH_MAX_WAIT_MS, ge=0, le=10_000)
    """How long a fetch may wait at the broker for records: the longest a new request, a
    source's next records or (for the tools) a result can go unseen on a broker that
    holds fetches that long; the embedded broker does, Kafka answers when records come."""
    session_timeout_ms: int = Field(DEFAULT_SESSION_TIMEOUT_MS, ge=1000)
    heartbeat_interval_ms: int = Field(DEFAULT_HEARTBEAT_INTERVAL_MS, ge=100)

    security_protocol: SecurityProtocol = SecurityProtocol.PLAINTEXT
    sasl_mechanism: SaslMechanism | None = None
    sasl_plain_username: str | None = None
    sasl_plain_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None

    @field_validator("output_url")
    @classmethod
    def _check_output_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(OUTPUT_URL_SCHEMES):
            raise ValueError("must be s3://bucket/prefix or file:///path")
        if value.startswith("s3://") and not value.removeprefix("s3://").split("/")[0]:
            raise ValueError("names no bucket (s3://bucket/prefix)")
        if value.startswith("file://") and not value.removeprefix("file://").startswith("/"):
            raise ValueError("a file URL needs an absolute path (file:///srv/exports)")
        return value

    @field_validator("source_topics")
    @classmethod
    def _check_source_topics(cls, value: str) -> str:
        patterns = [pattern.strip() for pattern in value.split(",")]
        if not all(patterns):
            raise ValueError("an empty pattern (comma-separated globs: 'sales.*,billing.*')")
        return ",".join(patterns)

    @property
    def output_directory(self) -> Path | None:
        """The directory outputs go to; None when they go to object storage."""
        if self.output_url is None:
            return self.output_dir
        if self.output_url.startswith("file://"):
            return Path(self.output_url.removeprefix("file://"))
        return None

    @property
    def source_topic_patterns(self) -> tuple[str, ...]:
        """`source_topics` split into its glob patterns."""
        return tuple(self.source_topics.split(","))

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


def read_config_file(path: Path) -> dict[str, Any]:
    """A TOML file of settings by field name; unknown keys and bad TOML are errors."""
    try:
        values = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(f"cannot read the config file {path}: {exc.strerror}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SettingsError(f"the config file {path} is not TOML: {exc}") from exc
    unknown = sorted(set(values) - set(Settings.model_fields))
    if unknown:
        raise SettingsError(
            f"the config file {path} has unknown setting {unknown[0]!r} "
            "(keys are the variables' names without EXPORT_, in lower case)"
        )
    return values


def setting_sources(
    flags: Mapping[str, str], file_values: Mapping[str, Any], environ: Mapping[str, str]
) -> dict[str, str]:
    """Where each setting's value comes from: `flag`, `variable`, `file` or `default`."""
    variables = _variable_names(environ)
    return {
        name: "flag"
        if name in flags
        else "variable"
        if env_name(name) in variables
        else "file"
        if name in file_values
        else "default"
        for name in Settings.model_fields
    }


def _variable_names(environ: Mapping[str, str]) -> set[str]:
    """Variable names as pydantic-settings matches them: in any case."""
    return {key.upper() for key in environ}


def load_settings(
    flags: Mapping[str, str] | None = None, config_file: Path | None = None
) -> Settings:
    """Settings from flags (by field name) over `EXPORT_*` variables over the config
    file over defaults.

    Raises `SettingsError` with one line naming the flag, variable or file at fault.
    """
    given: dict[str, Any] = dict(flags or {})
    file_values = read_config_file(config_file) if config_file is not None else {}
    settings_type = type("Settings", (Settings,), {"file_values": file_values})
    try:
        loaded = settings_type(**given)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "?"
        if field in given:
            source = flag_name(field)
        elif field in file_values and env_name(field) not in _variable_names(os.environ):
            source = f"{field} in {config_file}"
        else:
            source = env_name(field)
        raise SettingsError(f"bad setting {source}={first['input']!r}: {first['msg']}") from exc
    # The validated values as a plain `Settings` (the per-file subclass cannot be pickled).
    return Settings.model_construct(**dict(loaded))


def describe_settings(settings: Settings, sources: Mapping[str, str]) -> str:
    """The effective settings as a TOML file, each with where it came from; secrets and
    unset values are comments, so the output can be used as a `--config` file."""
    lines = []
    for name in Settings.model_fields:
        value = getattr(settings, name)
        origin = sources.get(name, "default")
        if value is None:
            lines.append(f"# {name} is not set ({origin})")
        elif isinstance(value, SecretStr):
            lines.append(f'# {name} = "**********"  # secret, not shown ({origin})')
        else:
            lines.append(f"{name} = {_toml_value(value)}  # {origin}")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float) and not isinstance(value, StrEnum):
        return repr(value)
    return json.dumps(str(value), ensure_ascii=False)  # a JSON string is a TOML one
