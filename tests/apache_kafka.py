"""Apache Kafka for the tests: its published jars, resolved once with Maven, run as KRaft nodes.

No Docker and no tarball: `mvn dependency:copy-dependencies` on `tests/kafka/pom.xml` puts
`kafka_2.13` and its runtime dependencies in `~/.cache/export-consumer/kafka-<version>/lib`
(under `$XDG_CACHE_HOME` when set), and each node is `java -cp 'lib/*' kafka.Kafka`,
broker and controller in one process, its log directory formatted by `StorageTool` first.

`ApacheKafka` is a cluster of one node by default; every node has its own ports and log
directory and shares the voters list and cluster id, so the same class runs three.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Self

from consumer.broker import die_with_parent, free_port, terminate

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from types import TracebackType

KAFKA_VERSION = "4.2.2"
"""The pinned Apache Kafka; `tests/kafka/pom.xml` pins Kafka's own log4j2 beside it."""
HERE = Path(__file__).parent / "kafka"
POM = HERE / "pom.xml"
LOG4J_CONFIG = HERE / "log4j2.properties"
RESOLVE_TIMEOUT_S = 600.0
STARTUP_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0
HEAP = ("-Xms256m", "-Xmx512m")
"""Small heaps: CI runs the broker beside the suite on two cores."""

PROTOCOLS = ("PLAINTEXT", "SASL_PLAINTEXT", "SSL", "SASL_SSL")
"""Client listeners a node can have; each listener is named after its protocol."""
SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")


class KafkaUnavailable(RuntimeError):
    """Java, Maven or the jars are missing: the caller may use another broker."""


def cache_dir(version: str = KAFKA_VERSION) -> Path:
    """Where the jars of one Kafka version live, shared by every checkout of the project."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "export-consumer" / f"kafka-{version}"


def resolve_jars(version: str = KAFKA_VERSION) -> Path:
    """The `lib` directory of `version`, resolved with Maven the first time.

    Safe when several processes resolve at once: each resolves into its own temporary
    directory and renames it into place; the first rename wins, the others are dropped.
    """
    lib = cache_dir(version) / "lib"
    if lib.is_dir():
        return lib
    if shutil.which("java") is None:
        raise KafkaUnavailable("no `java` on PATH (Apache Kafka needs Java 17 or later)")
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaUnavailable(f"no `mvn` on PATH to resolve the Kafka {version} jars")
    lib.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=".lib-", dir=lib.parent))
    command = [
        mvn, "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
        "-DincludeScope=runtime", f"-Dkafka.version={version}", f"-DoutputDirectory={partial}",
    ]  # fmt: skip
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=RESOLVE_TIMEOUT_S, check=False
        )
        if done.returncode != 0:
            tail = " | ".join((done.stdout + done.stderr).strip().splitlines()[-3:])
            raise KafkaUnavailable(f"mvn could not resolve Kafka {version}: {tail}")
        if not (partial / f"kafka_2.13-{version}.jar").is_file():
            raise KafkaUnavailable(f"mvn resolved no kafka_2.13-{version}.jar")
        try:
            partial.rename(lib)
        except OSError:
            if not lib.is_dir():  # not another process's rename: a real failure
                raise
    except subprocess.TimeoutExpired as exc:
        raise KafkaUnavailable(
            f"mvn did not resolve Kafka {version} in {exc.timeout:.0f} s"
        ) from exc
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return lib


def new_cluster_id() -> str:
    """A random 22-character cluster id, as `kafka-storage random-uuid` prints one."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):  # Kafka's own generator avoids these too
            return text


@dataclass(frozen=True)
class User:
    """A SASL user made when the log directories are formatted."""

    name: str
    password: str


@dataclass(frozen=True)
class KeyStore:
    """The TLS listeners' identity: an unencrypted PKCS#8 key then the certificate chain."""

    pem: Path


@dataclass
class KafkaNode:
    """One `kafka.Kafka` process, broker and controller, on its own loopback ports."""

    node_id: int
    work_dir: Path
    protocols: tuple[str, ...] = ("PLAINTEXT",)
    controller_port: int = field(default_factory=free_port)
    ports: dict[str, int] = field(default_factory=dict)
    heap: tuple[str, ...] = HEAP
    _process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        for protocol in self.protocols:
            self.ports.setdefault(protocol, free_port())

    @property
    def config_file(self) -> Path:
        return self.work_dir / "server.properties"

    @property
    def log_file(self) -> Path:
        return self.work_dir / "kafka.log"

    def address(self, protocol: str = "PLAINTEXT") -> str:
        return f"127.0.0.1:{self.ports[protocol]}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, lib: Path) -> None:
        """Start the process; returns at once (see `wait_ready`).

        Call it from a thread that outlives the node (the main one, not `to_thread`'s): the
        node gets SIGTERM when the thread that started it ends (Linux's parent-death signal
        is per thread).
        """
        if self.running():
            return
        with self.log_file.open("ab") as log:
            self._process = subprocess.Popen(
                [*_java(lib, self.heap), "kafka.Kafka", str(self.config_file)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent,  # noqa: PLW1509 - only sets the death signal
                start_new_session=True,  # Ctrl-C reaches pytest, which stops the broker
            )

    def wait_ready(self, deadline: float) -> None:
        """Until the broker answers an ApiVersions request (it listens before it serves)."""
        while not _answers_api_versions(self.address()):
            if self._process is None or self._process.poll() is not None:
                code = None if self._process is None else self._process.returncode
                raise RuntimeError(
                    f"Kafka node {self.node_id} exited ({code}); see {self.log_file}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"Kafka node {self.node_id} did not answer on {self.address()} in time; "
                    f"see {self.log_file}"
                )
            time.sleep(0.2)

    def stop(self) -> None:
        """SIGTERM (a controlled shutdown), SIGKILL past the timeout; safe to call twice."""
        process, self._process = self._process, None
        if process is not None:
            terminate(process, STOP_TIMEOUT_S)

    def kill(self) -> None:
        """SIGKILL: nothing is flushed; the next start recovers the log."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()


class ApacheKafka:
    """A KRaft cluster of `nodes` Apache Kafka processes on loopback, for one test session.

    `users` are SCRAM (SHA-256 and -512) and PLAIN users made at format time, for the
    SASL listeners among `protocols`; `keystore` is needed by the TLS ones. Every node
    also has a PLAINTEXT listener, which brokers use among themselves and tests use to set
    up topics. `stop()`/`start()` restart on the same ports and data; `kill()` is kill -9.
    `heap` is each node's JVM heap options.
    """

    def __init__(
        self,
        work_dir: Path,
        *,
        nodes: int = 1,
        protocols: Iterable[str] = (),
        users: Iterable[User] = (),
        keystore: KeyStore | None = None,
        extra_config: Mapping[str, str] | None = None,
        version: str = KAFKA_VERSION,
        heap: tuple[str, ...] = HEAP,
    ) -> None:
        wanted = ("PLAINTEXT", *(p for p in protocols if p != "PLAINTEXT"))
        unknown = set(wanted) - set(PROTOCOLS)
        if unknown:
            raise ValueError(f"unknown listener protocols: {sorted(unknown)}")
        if keystore is None and {"SSL", "SASL_SSL"} & set(wanted):
            raise ValueError("TLS listeners need a keystore")
        self.work_dir = work_dir
        self.version = version
        self.users = tuple(users)
        self.keystore = keystore
        self.cluster_id = new_cluster_id()
        self._extra = dict(extra_config or {})
        self.nodes = [
            KafkaNode(n, work_dir / f"node-{n}", wanted, heap=heap) for n in range(1, nodes + 1)
        ]
        self._lib: Path | None = None
        self._formatted = False

    @property
    def bootstrap_servers(self) -> str:
        return self.address("PLAINTEXT")

    def address(self, protocol: str) -> str:
        """The bootstrap list of one listener, every node's address in it."""
        return ",".join(node.address(protocol) for node in self.nodes)

    @property
    def log_files(self) -> list[Path]:
        return [node.log_file for node in self.nodes]

    def start(self, timeout_s: float = STARTUP_TIMEOUT_S) -> None:
        """Format (the first time), start every node, then wait until each one serves."""
        self._lib = self._lib or resolve_jars(self.version)
        if not self._formatted:
            for node in self.nodes:
                node.work_dir.mkdir(parents=True, exist_ok=True)
                node.config_file.write_text(self._properties(node))
                self._format(node)
            self._formatted = True
        for node in self.nodes:  # all before waiting on any: a quorum needs its voters
            node.start(self._lib)
        deadline = time.monotonic() + timeout_s
        try:
            for node in self.nodes:
                node.wait_ready(deadline)
        except BaseException:
            self.kill()
            raise

    def stop(self) -> None:
        """Stop every node, keeping ports and data for `start()`; safe to call twice."""
        for node in reversed(self.nodes):
            node.stop()

    def kill(self) -> None:
        for node in self.nodes:
            node.kill()

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

    def _format(self, node: KafkaNode) -> None:
        assert self._lib is not None
        command = [*_java(self._lib), "kafka.tools.StorageTool", "format"]
        command += ["-t", self.cluster_id, "-c", str(node.config_file)]
        for user in self.users:
            for mechanism in SCRAM_MECHANISMS:
                credential = f"{mechanism}=[name={user.name},password={user.password}]"
                command += ["--add-scram", credential]
        with (node.work_dir / "format.log").open("wb") as log:
            done = subprocess.run(
                command, stdout=log, stderr=subprocess.STDOUT, timeout=120, check=False
            )
        if done.returncode != 0:
            raise RuntimeError(
                f"formatting Kafka node {node.node_id} failed ({done.returncode}); "
                f"see {node.work_dir / 'format.log'}"
            )

    def _properties(self, node: KafkaNode) -> str:
        replicas = min(3, len(self.nodes))
        min_isr = 2 if replicas == 3 else 1
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.nodes)
        listeners = [f"{p}://{node.address(p)}" for p in node.protocols]
        protocol_map = ",".join(f"{p}:{p}" for p in node.protocols)
        config: dict[str, str] = {
            "process.roles": "broker,controller",
            "node.id": str(node.node_id),
            "controller.quorum.voters": voters,
            "controller.listener.names": "CONTROLLER",
            "listeners": ",".join([*listeners, f"CONTROLLER://127.0.0.1:{node.controller_port}"]),
            "advertised.listeners": ",".join(listeners),
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": f"{protocol_map},CONTROLLER:PLAINTEXT",
            "log.dirs": str(node.work_dir / "data"),
            "num.partitions": "1",
            "default.replication.factor": str(replicas),
            "min.insync.replicas": str(min_isr),
            "offsets.topic.replication.factor": str(replicas),
            "offsets.topic.num.partitions": "5",
            "transaction.state.log.replication.factor": str(replicas),
            "transaction.state.log.min.isr": str(min_isr),
            "transaction.state.log.num.partitions": "5",
            "share.coordinator.state.topic.replication.factor": str(replicas),
            "share.coordinator.state.topic.min.isr": str(min_isr),
            "group.initial.rebalance.delay.ms": "0",
            # The tests' consumers use 3 s sessions; Kafka's default floor is 6 s.
            "group.min.session.timeout.ms": "1000",
            # A small box, as in Kafka's own test harness.
            "log.cleaner.dedupe.buffer.size": "2097152",
            "num.network.threads": "2",
            "num.io.threads": "2",
            "num.recovery.threads.per.data.dir": "1",
            "background.threads": "2",
            "log.index.size.max.bytes": "1048576",
        }
        sasl = [p for p in node.protocols if p.startswith("SASL_")]
        if sasl:
            config["sasl.enabled.mechanisms"] = ",".join([*SCRAM_MECHANISMS, "PLAIN"])
            plain_users = " ".join(f'user_{u.name}="{u.password}"' for u in self.users)
            for protocol in sasl:
                prefix = f"listener.name.{protocol.lower()}"
                for mechanism in SCRAM_MECHANISMS:
                    config[f"{prefix}.{mechanism.lower()}.sasl.jaas.config"] = (
                        "org.apache.kafka.common.security.scram.ScramLoginModule required;"
                    )
                config[f"{prefix}.plain.sasl.jaas.config"] = (
                    f"org.apache.kafka.common.security.plain.PlainLoginModule required "
                    f"{plain_users};"
                )
        if self.keystore is not None:
            config["ssl.keystore.type"] = "PEM"
            config["ssl.keystore.location"] = str(self.keystore.pem)
        config.update(self._extra)
        return "".join(f"{key}={value}\n" for key, value in config.items())


def _java(lib: Path, heap: tuple[str, ...] = HEAP) -> list[str]:
    java = shutil.which("java")
    if java is None:
        raise KafkaUnavailable("no `java` on PATH (Apache Kafka needs Java 17 or later)")
    return [
        java, *heap, "-XX:+UseSerialGC", "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={LOG4J_CONFIG}", "-cp", f"{lib}/*",
    ]  # fmt: skip


def _answers_api_versions(address: str) -> bool:
    """One ApiVersions (v0) round trip: the broker reads and answers requests."""
    host, port = address.rsplit(":", 1)
    client_id = b"export-tests"
    correlation_id = 0x5E5E
    body = struct.pack(">hhih", 18, 0, correlation_id, len(client_id)) + client_id
    try:
        with socket.create_connection((host, int(port)), timeout=2) as sock:
            sock.sendall(struct.pack(">i", len(body)) + body)
            head = _read_exactly(sock, 4 + 4 + 2)
    except OSError:  # refused, reset or timed out
        return False
    if head is None:
        return False
    _, answered, _error = struct.unpack(">iih", head)
    return bool(answered == correlation_id)


def _read_exactly(sock: socket.socket, count: int) -> bytes | None:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))  # a timeout raises OSError: not answering
        if not chunk:
            return None
        data += chunk
    return data


if __name__ == "__main__":
    # `python -m tests.apache_kafka`: resolve the jars now (CI does, before the tests) and
    # print where they are; exit 1 with the reason when they cannot be.
    import sys

    try:
        print(resolve_jars())
    except KafkaUnavailable as exc:
        sys.exit(f"Apache Kafka {KAFKA_VERSION} for the tests: {exc}")
