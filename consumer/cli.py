"""`export-consumer run | dev`: every setting is a flag as well as an `EXPORT_*` variable."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import faulthandler
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

# Only light imports at the top: `--help` and a bad flag answer at once, and the Kafka
# client, the PDF renderer and pydantic load only for the command that needs them.
from consumer.errors import StartupError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from consumer.settings import Settings

DEV_LOG_NAME = "export-consumer-dev.log"
"""Where `dev` at a terminal writes its JSON log lines: beside the output directory."""
EXIT_BAD_SETTING = 2
"""A bad setting or any other start-up problem: one line on stderr."""


def _add_setting_flags(parser: argparse.ArgumentParser) -> None:
    from consumer.settings import Settings, env_name, flag_name  # noqa: PLC0415 - see top

    parser.add_argument(
        "--config",
        metavar="FILE",
        type=Path,
        help="a TOML file of settings (keys as the flags, with _); flags and variables win",
    )
    group = parser.add_argument_group("settings (each also an EXPORT_* variable)")
    for name, field in Settings.model_fields.items():
        group.add_argument(
            flag_name(name),
            dest=name,
            default=argparse.SUPPRESS,
            metavar="VALUE",
            help=f"{env_name(name)}, default {field.default!s}",
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="export-consumer", description="Turns Kafka record batches into files, on request."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run", help="join the group on the request topic and work until SIGTERM"
    )
    _add_setting_flags(run)
    dev = commands.add_parser(
        "dev", help="the service on the embedded broker (loopback); Ctrl-C stops both"
    )
    dev.add_argument(
        "--demo",
        action="store_true",
        help="run `seed-export --batch` once ready, then stop; exit status is the demo's",
    )
    _add_setting_flags(dev)
    config = commands.add_parser(
        "config",
        help="print the effective settings as TOML, where each came from, secrets masked",
    )
    _add_setting_flags(config)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from consumer.heap import release_large_buffers  # noqa: PLC0415 - see top
    from consumer.logs import configure_logging  # noqa: PLC0415
    from consumer.settings import env_name, load_settings  # noqa: PLC0415

    args = vars(build_parser().parse_args(argv))
    command = args.pop("command")
    demo = bool(args.pop("demo", False))
    config_file: Path | None = args.pop("config", None)
    flags = {k: str(v) for k, v in args.items()}
    if (
        command == "dev"
        and "enable_idempotence" not in flags
        and env_name("enable_idempotence") not in os.environ
    ):
        # The embedded broker has no InitProducerId; real Kafka keeps the default (on).
        flags["enable_idempotence"] = "false"
    if (
        command == "dev"
        and "window_lookup" not in flags
        and env_name("window_lookup") not in os.environ
    ):
        # The embedded broker's ListOffsets by timestamp answers offset 0 for any time.
        flags["window_lookup"] = "scan"
    try:
        settings = load_settings(flags, config_file)
        if command == "config":
            return _print_config(settings, flags, config_file)
        release_large_buffers(object_store=settings.output_directory is None)
        if command == "run":
            configure_logging(settings.log_level.value, settings.log_format)
            # `kill -USR1` prints every thread's stack to stderr: a stuck process explains itself.
            faulthandler.register(signal.SIGUSR1, all_threads=True)
            return asyncio.run(_serve(settings))
        log_file = configure_logging(
            settings.log_level.value,
            settings.log_format,
            people_log=settings.output_dir.resolve().parent / DEV_LOG_NAME,
            per_export=not demo,  # the demo prints a line per scenario itself
        )
        return _dev(settings, demo=demo, log_file=log_file)
    except StartupError as exc:
        print(f"export-consumer: {exc}", file=sys.stderr)
        return EXIT_BAD_SETTING


def _print_config(settings: Settings, flags: dict[str, str], config_file: Path | None) -> int:
    from consumer.settings import (  # noqa: PLC0415 - see top
        describe_settings,
        read_config_file,
        setting_sources,
    )

    file_values = read_config_file(config_file) if config_file is not None else {}
    print(describe_settings(settings, setting_sources(flags, file_values, os.environ)), end="")
    return 0


async def _serve(settings: Settings) -> int:
    from consumer.preflight import check_broker_access  # noqa: PLC0415 - see top
    from consumer.service import ExportService  # noqa: PLC0415

    await check_broker_access(settings)
    service = ExportService(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, service.request_stop)
    await service.run()
    return 0


def _dev(settings: Settings, *, demo: bool, log_file: Path | None) -> int:
    from consumer.broker import EmbeddedBroker  # noqa: PLC0415 - see top

    host, _, port = settings.bootstrap_servers.split(",")[0].rpartition(":")
    with EmbeddedBroker(host or "127.0.0.1", int(port)):
        return asyncio.run(_dev_session(settings, demo=demo, log_file=log_file))


async def _dev_session(settings: Settings, *, demo: bool, log_file: Path | None) -> int:
    from consumer.service import ExportService  # noqa: PLC0415 - see top
    from consumer.topics import ensure_topics, service_topics  # noqa: PLC0415

    await ensure_topics(settings, service_topics(settings))
    service = ExportService(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, service.request_stop)
    serving = asyncio.create_task(service.run())
    started = asyncio.create_task(service.started.wait())
    await asyncio.wait({serving, started}, return_when=asyncio.FIRST_COMPLETED)
    if not service.started.is_set():
        started.cancel()
        await serving  # it ended before it started: raises what stopped it
        return 0
    metrics_host = "127.0.0.1" if settings.metrics_host == "0.0.0.0" else settings.metrics_host  # noqa: S104
    print(
        f"export-consumer dev: broker {settings.bootstrap_servers}, "
        f"outputs {service.store.location}, metrics http://{metrics_host}:{service.metrics_port}/metrics"
        + (f", logs {log_file}" if log_file is not None else "")
        + ("" if demo else " (Ctrl-C stops)"),
        flush=True,
    )
    status = 0
    if demo:
        status = await _run_demo(settings)
        service.request_stop()
    await serving
    return status


async def _run_demo(settings: Settings) -> int:
    from consumer.settings import env_name  # noqa: PLC0415 - see top

    env = dict(os.environ)
    env[env_name("bootstrap_servers")] = settings.bootstrap_servers
    env[env_name("request_topic")] = settings.request_topic
    env[env_name("result_topic")] = settings.result_topic
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "producer_tools.seed", "--batch", env=env
    )
    try:
        return await process.wait()
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            await process.wait()


if __name__ == "__main__":
    sys.exit(main())
