"""What every benchmark needs: a broker, seeded data, the service as its own process, a stopwatch.

The broker is Apache Kafka (the tests' single node, from its jars) unless `--broker tansu`
(or `EXPORT_BENCH_BROKER=tansu`) picks the embedded Tansu that `export-consumer dev` runs.

The service runs as `export-consumer run` in a child process, so its memory and CPU are
its own: `ProcessTree` samples the resident memory and CPU time of that process and its
PDF workers. Times are taken the way a user sees them: from publishing the request to
receiving its result.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, TypeVar

import orjson

from consumer.broker import EmbeddedBroker, free_port
from consumer.settings import env_name, load_settings
from consumer.topics import ensure_topics
from producer_tools.kafka import ResultWaiter, producer, send_batches
from producer_tools.records import COLUMNS, generate
from producer_tools.seed import send_spread
from tests.apache_kafka import ApacheKafka

if TYPE_CHECKING:
    import argparse
    from collections.abc import Awaitable, Callable, Sequence
    from types import TracebackType

    from aiokafka import AIOKafkaProducer

    from consumer.settings import Settings

BROKERS = ("kafka", "tansu")
BROKER_VARIABLE = "EXPORT_BENCH_BROKER"
BOOTSTRAP_VARIABLE = "EXPORT_BENCH_BOOTSTRAP"
BATCH_RECORDS = 1_000
SAMPLE_INTERVAL_S = 0.02
PSS_EVERY = 5
READY_TIMEOUT_S = 60.0
MB = 1024 * 1024
T = TypeVar("T")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def parse_args(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """The benchmark's arguments, with `--broker`; the choice goes to `BenchKafka` and to
    peers in child processes through EXPORT_BENCH_BROKER."""
    parser.add_argument(
        "--broker",
        choices=BROKERS,
        default=os.environ.get(BROKER_VARIABLE, "kafka"),
        help="Apache Kafka 4.2 from its jars (default), or the embedded Tansu",
    )
    args = parser.parse_args()
    os.environ[BROKER_VARIABLE] = args.broker
    return args


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found += [int(p) for p in task.read_text().split()]
        except OSError:
            continue
    return found


def _stat(pid: int) -> tuple[int, float] | None:
    """(resident bytes, CPU seconds) of one process, or None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # Fields after the command name: utime, stime are 12 and 13, rss is 22 (0-based).
    cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return int(fields[21]) * PAGE_SIZE, cpu


def cpu_seconds(pid: int | None) -> float:
    """CPU seconds one process has used so far (0 when there is none)."""
    stat = _stat(pid) if pid is not None else None
    return stat[1] if stat is not None else 0.0


def _pss(pid: int) -> int:
    """Proportional set size: resident bytes, shared pages divided among their sharers."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class ProcessTree:
    """Samples a process and its descendants: peak summed RSS and CPU seconds used."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_rss = 0
        self.peak_pss = 0
        """Peak of the summed PSS: what the processes use together, shared pages once."""
        self.peaks: dict[int, int] = {}
        """Each process's own peak resident bytes."""
        self._cpu: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def pids(self) -> list[int]:
        pids, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            pids.append(pid)
            todo += _children(pid)
        return pids

    def sample(self, *, pss: bool = True) -> int:
        """Resident sizes and CPU times now; PSS too when asked (it costs the kernel a
        walk of each process's page tables, about 0.5 ms each)."""
        stats = {pid: stat for pid in self.pids() if (stat := _stat(pid)) is not None}
        rss = sum(stat[0] for stat in stats.values())
        for pid, (resident, cpu) in stats.items():
            self._cpu[pid] = cpu
            self.peaks[pid] = max(self.peaks.get(pid, 0), resident)
        if pss or rss > self.peak_rss:
            self.peak_pss = max(self.peak_pss, sum(_pss(pid) for pid in stats))
        self.peak_rss = max(self.peak_rss, rss)
        return rss

    def cpu_split(self) -> tuple[float, float]:
        """CPU seconds so far of the service process, and of its children together
        (exited ones keep their last sample)."""
        self.sample()
        own = self._cpu.get(self.pid, 0.0)
        return own, sum(self._cpu.values()) - own

    def reset_peak(self) -> None:
        self.peak_rss = self.peak_pss = 0
        self.peaks.clear()
        self.sample()

    def describe_peaks(self) -> str:
        """Peak of the whole tree, then of the service process and each child (workers and
        multiprocessing's resource tracker), each at its own peak."""
        own = self.peaks.get(self.pid, 0)
        children = sorted((v for k, v in self.peaks.items() if k != self.pid), reverse=True)
        return (
            f"peak {self.peak_rss / MB:.0f} MB RSS summed, {self.peak_pss / MB:.0f} MB PSS "
            f"(service process {own / MB:.0f} MB; its {len(children)} child processes "
            + ", ".join(f"{v / MB:.0f}" for v in children)
            + " MB)"
        )

    def __enter__(self) -> Self:
        def loop() -> None:
            # PSS at every fifth sample and at each new peak of RSS: sampled at every
            # one, six processes' page-table walks took 7 % of a core from what is
            # measured.
            ticks = 0
            while not self._stop.wait(SAMPLE_INTERVAL_S):
                ticks += 1
                self.sample(pss=ticks % PSS_EVERY == 0)

        self._thread = threading.Thread(target=loop, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def busy_cores() -> list[float]:
    """Busy jiffies of each CPU since boot, from /proc/stat (user+nice+system+irq+softirq)."""
    busy = []
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name.startswith("cpu") and name != "cpu":
            user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in values[:7])
            busy.append((user + nice + system + irq + softirq) / CLOCK_TICKS)
    return busy


@dataclass
class ServiceProcess:
    """`export-consumer run` as a child process against the bench's broker."""

    bootstrap: str
    output_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    group_id: str = field(default_factory=lambda: f"bench-{secrets.token_hex(4)}")
    metrics_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def start(self) -> None:
        env = dict(os.environ)
        env.update(
            {
                env_name("bootstrap_servers"): self.bootstrap,
                env_name("group_id"): self.group_id,
                env_name("output_dir"): str(self.output_dir),
                env_name("metrics_host"): "127.0.0.1",
                env_name("metrics_port"): str(self.metrics_port),
                env_name("enable_idempotence"): "false",
                env_name("log_level"): "WARNING",
                env_name("session_timeout_ms"): "6000",
                env_name("heartbeat_interval_ms"): "1000",
                **self.extra_env,
            }
        )
        self.process = subprocess.Popen([sys.executable, "-m", "consumer.cli", "run"], env=env)
        deadline = time.monotonic() + READY_TIMEOUT_S
        ready = self.metrics_url.replace("/metrics", "/readyz")
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the service exited with {self.process.returncode}")
            try:
                with urllib.request.urlopen(ready, timeout=1) as response:  # noqa: S310
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("the service did not become ready in time")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@dataclass(frozen=True, slots=True)
class SeededRange:
    """Records written once to the records topic, exported many times."""

    topic: str
    key: str
    start: int
    end: int
    count: int

    def source(self) -> dict[str, Any]:
        """The request's source for these records."""
        return {"topic": self.topic, "partition": 0, "start_offset": self.start,
                "end_offset": self.end, "key": self.key}  # fmt: skip


@dataclass(frozen=True, slots=True)
class SeededWindow:
    """Records written across partitions with timestamps in a window, exported by it."""

    topic: str
    key: str
    since: str
    until: str
    count: int

    def source(self) -> dict[str, Any]:
        return {"topic": self.topic, "since": self.since, "until": self.until, "key": self.key}


class KafkaBroker:
    """One Apache Kafka node (broker and controller) for a benchmark run."""

    def __init__(self, work_dir: Path) -> None:
        self._kafka = ApacheKafka(work_dir, extra_config={"auto.create.topics.enable": "false"})

    @property
    def bootstrap_servers(self) -> str:
        return self._kafka.bootstrap_servers

    @property
    def pid(self) -> int | None:
        return self._kafka.nodes[0].pid

    def start(self) -> None:
        self._kafka.start()

    def stop(self) -> None:
        self._kafka.stop()


@dataclass(frozen=True, slots=True)
class RunningBroker:
    """A broker that is already up (`EXPORT_BENCH_BOOTSTRAP`): the smoke tests use the
    test session's, so each benchmark run does not start one of its own."""

    bootstrap_servers: str
    pid: int | None = None

    def start(self) -> None:
        """Nothing to start."""

    def stop(self) -> None:
        """Nothing to stop."""


class BenchKafka:
    """The bench's broker, its topics, a producer and a result waiter."""

    def __init__(self, broker: str | None = None) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="export-bench-"))
        self.kind = broker or os.environ.get(BROKER_VARIABLE, "kafka")
        """`kafka` or `tansu`."""
        running = os.environ.get(BOOTSTRAP_VARIABLE)
        self.broker: KafkaBroker | EmbeddedBroker | RunningBroker
        if running:
            self.broker = RunningBroker(running)
        elif self.kind == "kafka":
            self.broker = KafkaBroker(self.workdir / "kafka")
        else:
            self.broker = EmbeddedBroker(port=free_port())
        # Topics of their own on a shared broker: another run's requests are not ours.
        suffix = f".{secrets.token_hex(4)}" if running else ""
        self.records_topic = f"bench.records{suffix}"
        self._topics = {
            "request_topic": f"export.requests{suffix}",
            "result_topic": f"export.results{suffix}",
            "dlq_topic": f"export.requests.dlq{suffix}",
        }
        self.settings: Settings | None = None
        self._producer: AIOKafkaProducer | None = None
        self._waiter: ResultWaiter | None = None

    async def __aenter__(self) -> Self:
        self.broker.start()
        self.settings = load_settings(
            {
                "bootstrap_servers": self.broker.bootstrap_servers,
                "enable_idempotence": str(self.idempotence).lower(),
                **self._topics,
            }
        )
        s = self.settings
        await ensure_topics(
            s, {s.request_topic: 4, s.result_topic: 1, s.dlq_topic: 1, self.records_topic: 1}
        )
        self._producer = producer(s)
        await self._producer.start()
        self._waiter = ResultWaiter(s)
        await self._waiter.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._waiter is not None:
            await self._waiter.stop()
        if self._producer is not None:
            await self._producer.stop()
        self.broker.stop()
        # The broker's log and the outputs: gigabytes a run, which filled this VM's disk.
        shutil.rmtree(self.workdir, ignore_errors=True)

    @property
    def idempotence(self) -> bool:
        """As the service runs there: idempotent on Kafka, not on Tansu (no producer ids)."""
        return self.kind == "kafka"

    def service(self, name: str, **extra_env: str) -> ServiceProcess:
        return ServiceProcess(
            self.broker.bootstrap_servers,
            self.workdir / name,
            extra_env={
                env_name("enable_idempotence"): str(self.idempotence).lower(),
                **{env_name(name): topic for name, topic in self._topics.items()},
                **extra_env,
            },
        )

    async def seed(
        self,
        count: int,
        *,
        batch_records: int = BATCH_RECORDS,
        shape: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> SeededRange:
        """Write `count` generated records (each made over by `shape`, if given) in JSON
        batches under one fresh key."""
        assert self._producer is not None  # noqa: S101 - inside the context
        key = f"bench-{secrets.token_hex(4)}"
        batches = []
        for start in range(0, count, batch_records):
            records = generate(min(batch_records, count - start), start_id=start + 1)
            batches.append(orjson.dumps([shape(r) for r in records] if shape else records))
        start, end = await send_batches(
            self._producer, self.records_topic, partition=0, key=key.encode(), batches=batches
        )
        return SeededRange(self.records_topic, key, start, end, count)

    async def seed_window(
        self, count: int, partitions: int, *, batch_records: int = BATCH_RECORDS
    ) -> SeededWindow:
        """Write `count` records in batches spread over `partitions` partitions of a topic
        of their own, stamped across the last hour (rising with the offsets)."""
        assert self._producer is not None  # noqa: S101 - inside the context
        assert self.settings is not None  # noqa: S101
        topic = f"{self.records_topic}.window{partitions}"
        await ensure_topics(self.settings, {topic: partitions})
        key = f"bench-{secrets.token_hex(4)}"
        batches = [
            orjson.dumps(generate(min(batch_records, count - start), start_id=start + 1))
            for start in range(0, count, batch_records)
        ]
        until = datetime.now(UTC)
        since = until - timedelta(hours=1)
        await send_spread(
            self._producer,
            topic,
            partitions=partitions,
            key=key.encode(),
            batches=batches,
            window=(since, until),
            on_sent=lambda _: None,
        )
        stamp = "%Y-%m-%dT%H:%M:%S.%fZ"
        return SeededWindow(topic, key, since.strftime(stamp), until.strftime(stamp), count)

    async def export(
        self,
        seeded: SeededRange | SeededWindow,
        fmt: str,
        columns: Sequence[Any] = COLUMNS,
        **options: Any,
    ) -> tuple[float, dict[str, Any]]:
        """Request an export of the range; seconds from publishing to the result, and it."""
        seconds, results = await self.export_many([seeded], fmt, columns, **options)
        return seconds, results[0]

    async def export_many(
        self,
        ranges: Sequence[SeededRange | SeededWindow],
        fmt: str,
        columns: Sequence[Any] = COLUMNS,
        **options: Any,
    ) -> tuple[float, list[dict[str, Any]]]:
        """Request exports of all ranges at once; seconds until the last result, and them."""
        assert self._producer is not None  # noqa: S101
        assert self._waiter is not None  # noqa: S101
        assert self.settings is not None  # noqa: S101
        started = time.perf_counter()
        ids = []
        for seeded in ranges:
            export_id = f"bench-{fmt}-{secrets.token_hex(6)}"
            ids.append(export_id)
            request = {
                "export_id": export_id,
                "format": fmt,
                "columns": list(columns),
                "source": seeded.source(),
                "requested_by": "bench",
                "title": f"Benchmark {fmt} export of {seeded.count} records",
                "options": options,
            }
            await self._producer.send(
                self.settings.request_topic, orjson.dumps(request), key=export_id.encode()
            )
        await self._producer.flush()
        results = []
        for export_id in ids:
            result = await self._waiter.wait(export_id, timeout_s=900)
            if result.get("status") != "completed":
                raise RuntimeError(f"bench export failed: {result}")
            results.append(result)
        return time.perf_counter() - started, results


@dataclass(frozen=True)
class CpuUse:
    """CPU seconds spent by each party during one measured stretch."""

    service: float
    workers: float
    broker: float
    requester: float
    """This benchmark process: publishing requests and reading results."""

    @property
    def exporter(self) -> float:
        """The product's own CPU: the service and its workers."""
        return self.service + self.workers

    @property
    def total(self) -> float:
        return self.service + self.workers + self.broker + self.requester

    def describe(self, wall_s: float) -> str:
        total = self.total
        return (
            f"CPU {total:.2f} s = {total / wall_s:.2f} cores (service {self.service:.2f}, "
            f"workers {self.workers:.2f}, broker {self.broker:.2f}, "
            f"requester {self.requester:.2f})"
        )


class CpuMeter:
    """CPU seconds of the service, its workers, the broker and this process over a stretch."""

    def __init__(self, tree: ProcessTree, broker_pid: int | None) -> None:
        self._tree = tree
        self._broker_pid = broker_pid

    def _now(self) -> tuple[float, float, float, float]:
        service, workers = self._tree.cpu_split()
        stat = _stat(self._broker_pid) if self._broker_pid is not None else None
        own = os.times()
        return service, workers, stat[1] if stat else 0.0, own.user + own.system

    async def measure(self, run: Awaitable[T]) -> tuple[T, CpuUse]:
        before = self._now()
        result = await run
        after = self._now()
        return result, CpuUse(*(b - a for a, b in zip(before, after, strict=True)))


async def concurrent(fmt: str, count: int, records: int, rounds: int = 3) -> None:
    """`count` exports of `records` at once against one alone, alternating for `rounds`:
    throughput (records per wall-second and per CPU-second of the service and its
    workers), the CPU cost per record of many at once over one alone (goal: at most
    1.2x), wall time, cores, memory, and where the CPU time went."""
    async with BenchKafka() as kafka:
        ranges = [await kafka.seed(records) for _ in range(count)]
        with kafka.service("concurrent") as service:
            assert service.process is not None  # noqa: S101
            with ProcessTree(service.process.pid) as tree:
                meter = CpuMeter(tree, kafka.broker.pid)
                await kafka.export(ranges[0], fmt)  # warm-up (for PDF: a worker exists)
                ones: list[tuple[float, CpuUse]] = []
                manys: list[tuple[float, CpuUse]] = []
                for _ in range(rounds):
                    (one_s, _), one_cpu = await meter.measure(kafka.export(ranges[0], fmt))
                    ones.append((one_s, one_cpu))
                    tree.reset_peak()
                    cores_before = busy_cores()
                    (wall_s, _), many_cpu = await meter.measure(kafka.export_many(ranges, fmt))
                    per_core = [b - a for a, b in zip(cores_before, busy_cores(), strict=True)]
                    manys.append((wall_s, many_cpu))
    one_s, one_cpu = _median_round(ones)
    wall_s, many_cpu = _median_round(manys)
    one_cost = one_cpu.exporter / records
    many_cost = many_cpu.exporter / (records * count)
    print(
        f"{count} concurrent {fmt.upper()} exports of {records:,} records, median of {rounds} "
        f"alternating rounds: CPU per record {count} at once / one alone "
        f"{ratio(many_cost, one_cost)} (goal <= 1.2x)"
    )
    for label, n, wall, cpu in (
        ("one alone", records, one_s, one_cpu),
        (f"{count} at once", records * count, wall_s, many_cpu),
    ):
        print(
            f"  {label}: {n / wall:,.0f} records per wall-second, "
            f"{_rate(n, cpu.exporter)} per CPU-second of the service and workers "
            f"({_rate(n, cpu.total)} counting the broker and requester too); {wall:.2f} s"
        )
    print(
        f"  wall time {count} at once / one alone {wall_s / one_s:.2f}x; {tree.describe_peaks()}; "
        "machine cores busy (last round): "
        + ", ".join(f"cpu{i} {100 * busy / wall_s:.0f}%" for i, busy in enumerate(per_core))
    )
    print(f"  one alone: {one_cpu.describe(one_s)}")
    print(f"  {count} at once: {many_cpu.describe(wall_s)}")


def ratio(a: float, b: float) -> str:
    """`a / b` as a ratio; a tiny run may use less CPU than one clock tick (10 ms) counts."""
    return f"{a / b:.2f}x" if b > 0 else "n/a (too little CPU time to count)"


def _rate(n: float, seconds: float) -> str:
    return f"{n / seconds:,.0f}" if seconds > 0 else "n/a"


def _median_round(rounds: list[tuple[float, CpuUse]]) -> tuple[float, CpuUse]:
    """The round whose CPU use of the service and workers is the median."""
    ordered = sorted(rounds, key=lambda r: r[1].exporter)
    return ordered[len(ordered) // 2]


def timed(func: Callable[[], object]) -> float:
    started = time.perf_counter()
    func()
    return time.perf_counter() - started


def run(main: Callable[[], Any]) -> None:
    """Run an async benchmark's main; Ctrl-C exits quietly."""
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(130)
