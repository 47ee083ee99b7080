"""Kafka Connect's FileStream sink against the service, on the same records.

    python -m bench.connect                   # 1,000,000 records, 3 alternating rounds

A standalone Connect worker (`connect-runtime` and `connect-file` from Maven Central, run
with `java -cp`) is started once and its start-up timed, from launching the JVM to its REST
API answering. Each round then creates a FileStreamSink connector for the records topic
through the REST API (a new name, so a new consumer group reading from the earliest
offset) and times it from the POST to the file holding every record's value; the service's
CSV export of the same range runs beside it, timed from publishing the request to the
`completed` result. The sink dumps each message's value as it is (one line per message,
here a JSON array of 1,000 records), with no column selection, quoting or formula
escaping: it is the floor of "get the topic into a file", not the same output.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import orjson

from bench.harness import MB, BenchKafka, ProcessTree, SeededRange, median, parse_args, run
from consumer.broker import free_port, terminate
from tests.apache_kafka import LOG4J_CONFIG, cache_dir

CONNECT_VERSION = "4.2.0"
"""connect-file is on Maven Central at 4.2.0 but not 4.2.1 or 4.2.2 (tried 2026-12-02);
a 4.2.0 worker is a client of the 4.2.2 broker like any other."""
POM = Path(__file__).parent / "connect" / "pom.xml"
SINK = "org.apache.kafka.connect.file.FileStreamSinkConnector"
READY_TIMEOUT_S = 120.0
POLL_S = 0.02


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.connect", description=__doc__)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    return parser


def resolve_jars() -> Path:
    """The worker's jars, resolved with Maven into the user's cache the first time."""
    lib = cache_dir(f"connect-{CONNECT_VERSION}") / "lib"
    if lib.is_dir():
        return lib
    partial = lib.with_name(f".lib-{secrets.token_hex(4)}")
    partial.parent.mkdir(parents=True, exist_ok=True)
    command = [
        "mvn", "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
        "-DincludeScope=runtime", f"-Dkafka.version={CONNECT_VERSION}",
        f"-DoutputDirectory={partial}",
    ]  # fmt: skip
    subprocess.run(command, check=True, timeout=600)
    partial.rename(lib)
    return lib


class ConnectWorker:
    """`ConnectStandalone` with no connectors, its REST API on a loopback port."""

    def __init__(self, bootstrap: str, work_dir: Path) -> None:
        self.port = free_port()
        self.work_dir = work_dir
        self._bootstrap = bootstrap
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        """Launch the JVM; seconds until the REST API answers."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        config = self.work_dir / "worker.properties"
        config.write_text(
            "\n".join(
                [
                    f"bootstrap.servers={self._bootstrap}",
                    "key.converter=org.apache.kafka.connect.storage.StringConverter",
                    "value.converter=org.apache.kafka.connect.storage.StringConverter",
                    f"offset.storage.file.filename={self.work_dir / 'offsets'}",
                    f"listeners=http://127.0.0.1:{self.port}",
                    "",
                ]
            )
        )
        lib = resolve_jars()
        java = [
            "java", "-Xms256m", "-Xmx1g", f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            "-cp", f"{lib}/*", "org.apache.kafka.connect.cli.ConnectStandalone", str(config),
        ]  # fmt: skip
        started = time.perf_counter()
        with (self.work_dir / "connect.log").open("wb") as log:
            self._process = subprocess.Popen(java, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"Connect exited; see {self.work_dir / 'connect.log'}")
            try:
                with urllib.request.urlopen(self._url("/"), timeout=1):  # noqa: S310
                    return time.perf_counter() - started
            except (urllib.error.URLError, OSError):
                time.sleep(POLL_S)
        raise RuntimeError(f"Connect did not answer in time; see {self.work_dir / 'connect.log'}")

    @property
    def pid(self) -> int:
        assert self._process is not None  # noqa: S101
        return self._process.pid

    def create_sink(self, name: str, topic: str, out: Path) -> None:
        body = {
            "name": name,
            "config": {"connector.class": SINK, "tasks.max": "1", "topics": topic,
                       "file": str(out)},
        }  # fmt: skip
        self._request("POST", "/connectors", body)

    def delete(self, name: str) -> None:
        self._request("DELETE", f"/connectors/{name}", None)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            terminate(process, 30.0)

    def _url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _request(self, method: str, path: str, body: object) -> None:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 - our own worker
            self._url(path), data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30):  # noqa: S310
            pass


async def sink_once(worker: ConnectWorker, seeded: SeededRange, expected_bytes: int) -> float:
    """Create a sink, wait until its file holds every value; seconds from the POST."""
    name = f"bench-sink-{secrets.token_hex(4)}"
    out = worker.work_dir / f"{name}.txt"
    started = time.perf_counter()
    await asyncio.to_thread(worker.create_sink, name, seeded.topic, out)
    # Another process writes the file: nothing here could set an event.
    while not out.exists() or out.stat().st_size < expected_bytes:  # noqa: ASYNC110
        await asyncio.sleep(POLL_S)
    seconds = time.perf_counter() - started
    await asyncio.to_thread(worker.delete, name)
    out.unlink()
    return seconds


async def topic_bytes(kafka: BenchKafka, seeded: SeededRange) -> int:
    """What the sink's file holds when done: every value and a line end each."""
    command = [
        sys.executable, "-m", "bench.peers.read_aiokafka", kafka.broker.bootstrap_servers,
        seeded.topic, str(seeded.start), str(seeded.end),
    ]  # fmt: skip
    done = await asyncio.to_thread(subprocess.run, command, capture_output=True, check=True)
    report = orjson.loads(done.stdout)
    return int(report["bytes"]) + int(report["messages"])


async def compare(records: int, rounds: int) -> None:
    async with BenchKafka() as kafka:
        print(f"seeding {records:,} records in batches of 1,000 on {kafka.kind}", flush=True)
        seeded = await kafka.seed(records)
        expected = await topic_bytes(kafka, seeded)
        worker = ConnectWorker(kafka.broker.bootstrap_servers, kafka.workdir / "connect")
        startup_s = await asyncio.to_thread(worker.start)
        print(
            f"Connect worker {CONNECT_VERSION} answered {startup_s:.1f} s after launch", flush=True
        )
        connect_s: list[float] = []
        service_s: list[float] = []
        try:
            with kafka.service("connect-peer") as service, ProcessTree(worker.pid) as jvm:
                assert service.process is not None  # noqa: S101
                await sink_once(worker, seeded, expected)  # warm-up: classes loaded, JIT
                await kafka.export(seeded, "csv")
                for round_no in range(1, rounds + 1):
                    connect_s.append(await sink_once(worker, seeded, expected))
                    seconds, _ = await kafka.export(seeded, "csv")
                    service_s.append(seconds)
                    print(
                        f"round {round_no}: Connect sink {connect_s[-1]:.2f} s, "
                        f"service CSV {seconds:.2f} s",
                        flush=True,
                    )
                jvm_peak = jvm.peak_rss / MB
        finally:
            worker.stop()
    ours, theirs = median(service_s), median(connect_s)
    print(
        f"{records:,} records ({expected / MB:.0f} MB of values), medians of {rounds} rounds: "
        f"Connect FileStreamSink {theirs:.2f} s from creating the connector (worker start-up "
        f"{startup_s:.1f} s, JVM peak {jvm_peak:.0f} MB), service CSV export {ours:.2f} s: "
        f"service/Connect {ours / theirs:.2f}x"
    )


def main() -> None:
    args = parse_args(build_parser())
    run(lambda: compare(args.records, args.rounds))


if __name__ == "__main__":
    main()
