"""The service: consumes requests in a group, runs exports within the limit, commits safely."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from contextlib import AsyncExitStack, suppress
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, InvalidSessionTimeoutError, KafkaError

from consumer.errors import InvalidRequest, PoisonMessage, SettingsError, StartupError
from consumer.events import declared_format, decode_request, parse_envelope
from consumer.health import HealthServer, Readiness
from consumer.lanes import LanePool
from consumer.limiter import ExportLimiter
from consumer.logs import CURRENT_EXPORT
from consumer.loop_lag import watch_loop_lag
from consumer.metrics import ExportMetrics, resident_memory_bytes
from consumer.offsets import OffsetTracker
from consumer.preflight import wait_for_broker
from consumer.publisher import ResultPublisher
from consumer.render_pool import PdfWorkerPool
from consumer.runner import ExportRunner, failed_result
from consumer.settings import env_name
from consumer.storage import open_store
from consumer.topic_access import TopicAccess
from consumer.topics import require_topics
from consumer.writers.pdf_fonts import find_font

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from aiokafka.structs import ConsumerRecord
    from prometheus_client import CollectorRegistry

    from consumer.settings import Settings
    from consumer.structs import ExportResult

log = logging.getLogger(__name__)

POLL_TIMEOUT_MS = 200
MEMORY_SAMPLE_S = 1.0
BROKER_CHECK_S = 2.0
BROKER_CHECK_TIMEOUT_S = 5.0
# Under the usual 30 s a supervisor grants between SIGTERM and SIGKILL, for both steps together.
SHUTDOWN_STEP_S = 12.0


class ExportService:
    """Joins the group on the request topic and works until `request_stop()`.

    Each request becomes a task; results are published before offsets are
    committed; while `max_in_flight` requests are admitted the request
    partitions are paused, so nothing queues without bound.
    """

    def __init__(self, settings: Settings, registry: CollectorRegistry | None = None) -> None:
        self.settings = settings
        self.metrics = ExportMetrics(registry, settings.metrics_max_users, self._resident_memory)
        self.readiness = Readiness()
        self.limiter = ExportLimiter(settings.max_in_flight)
        self.metrics.running.set_function(lambda: self.limiter.running)
        self.metrics.queue_depth.set_function(lambda: self.limiter.waiting)
        self.metrics.ready.set_function(lambda: float(self.readiness.reason is None))
        self.store = open_store(settings)
        self.font = find_font(settings.pdf_font)
        self.pdf_pool = PdfWorkerPool(settings.max_in_flight, self.font, settings.pdf_max_pages)

        def exports_taken_on() -> int:
            return self.limiter.running + self.limiter.waiting

        self.lane_pool = LanePool(settings.max_in_flight, load=exports_taken_on)
        self.runner = ExportRunner(
            settings, self.store, self.pdf_pool, self.lane_pool, load=exports_taken_on
        )
        self.metrics_port: int | None = None
        """The bound metrics port, once started (differs from the setting when that is 0)."""
        self._tracker = OffsetTracker()
        self._tasks: defaultdict[TopicPartition, set[asyncio.Task[None]]] = defaultdict(set)
        self._stopping = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._publisher: ResultPublisher | None = None
        self.started = asyncio.Event()
        """Set once the metrics port is bound and the clients are connected."""

    def _resident_memory(self) -> int:
        """The service's memory: this process and its PDF and CSV worker processes."""
        return resident_memory_bytes() + sum(
            resident_memory_bytes(pid)
            for pid in [*self.pdf_pool.worker_pids(), *self.lane_pool.worker_pids()]
        )

    def request_stop(self) -> None:
        """Begin a graceful shutdown; callable from signal handlers and other threads."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self.store.prepare()
        try:
            await self._run()
        finally:
            await self.store.close()

    async def _run(self) -> None:
        if not self.font.is_dejavu:
            log.warning(
                "DejaVu Sans not found: PDFs use reportlab's Vera, which covers Latin-1 only "
                "(install fonts-dejavu-core or set EXPORT_PDF_FONT)",
                extra={"event": "font_fallback", "font": str(self.font.regular)},
            )
        async with AsyncExitStack() as stack:
            stack.callback(self.pdf_pool.stop)
            stack.callback(self.lane_pool.stop)
            health = self._health_server()
            health.start()
            stack.callback(health.stop)
            self.metrics_port = health.port
            if not await wait_for_broker(
                self.settings, self._stopping, self.readiness.broker_failed
            ):
                return  # asked to stop before the broker ever answered
            self.readiness.broker_answered()
            publisher = ResultPublisher(self.settings)
            await publisher.start()
            self._publisher = publisher
            stack.push_async_callback(_bounded_step, "producer.stop", publisher.stop)
            await require_topics(self.settings, self._publisher)
            consumer = AIOKafkaConsumer(
                **self.settings.kafka_client_options(),
                group_id=self.settings.group_id,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                session_timeout_ms=self.settings.session_timeout_ms,
                heartbeat_interval_ms=self.settings.heartbeat_interval_ms,
                max_poll_records=self.settings.max_in_flight,
                fetch_max_wait_ms=self.settings.fetch_max_wait_ms,
            )
            await consumer.start()
            stack.push_async_callback(_bounded_step, "consumer.stop", consumer.stop)
            await TopicAccess.from_settings(self.settings).warn_unmatched_on(consumer)
            self._consumer = consumer
            consumer.subscribe([self.settings.request_topic], listener=_Rebalance(self))
            sampler = asyncio.create_task(self._sample_memory())
            stack.push_async_callback(_cancel, sampler)
            watcher = asyncio.create_task(self._watch_broker(consumer))
            stack.push_async_callback(_cancel, watcher)
            lag = asyncio.create_task(watch_loop_lag(self.metrics.loop_lag))
            stack.push_async_callback(_cancel, lag)
            log.info(
                "export service started",
                extra={
                    "event": "service_started",
                    "bootstrap_servers": self.settings.bootstrap_servers,
                    "group_id": self.settings.group_id,
                    "request_topic": self.settings.request_topic,
                    "output": self.store.location,
                    "metrics_port": health.port,
                },
            )
            self.started.set()
            await self._consume(consumer)
            await self._drain(consumer)

    def _health_server(self) -> HealthServer:
        host, port = self.settings.metrics_host, self.settings.metrics_port
        try:
            return HealthServer(host, port, self.metrics.registry, self.readiness)
        except OSError as exc:
            raise StartupError(
                f"cannot serve /metrics on {host}:{port} ({env_name('metrics_host')}, "
                f"{env_name('metrics_port')}): {exc.strerror or exc}"
            ) from exc

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        while not self._stopping.is_set():
            self._apply_backpressure(consumer)
            free = self.limiter.capacity - self.limiter.taken
            try:
                fetched = await consumer.getmany(
                    timeout_ms=POLL_TIMEOUT_MS, max_records=max(free, 1)
                )
            except InvalidSessionTimeoutError as exc:
                # Known only when joining the group: before any request was taken.
                raise SettingsError(
                    f"the broker refuses {env_name('session_timeout_ms')}="
                    f"{self.settings.session_timeout_ms}: it is outside the broker's "
                    "group.min.session.timeout.ms .. group.max.session.timeout.ms "
                    "(Kafka's defaults: 6000 .. 1800000)"
                ) from exc
            for messages in fetched.values():
                for message in messages:
                    self._dispatch(message)
            await self._commit(consumer)

    def _apply_backpressure(self, consumer: AIOKafkaConsumer) -> None:
        assigned = consumer.assignment()
        if self.limiter.full:
            consumer.pause(*assigned)
        else:
            consumer.resume(*assigned)

    def _dispatch(self, message: ConsumerRecord[bytes, bytes]) -> None:
        tp = TopicPartition(message.topic, message.partition)
        self._tracker.received(tp, message.offset)
        self.limiter.admit()
        self.metrics.received.inc()
        task = asyncio.create_task(self._handle(tp, message))
        tasks = self._tasks[tp]
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        task.add_done_callback(_log_crash)

    async def _handle(self, tp: TopicPartition, message: ConsumerRecord[bytes, bytes]) -> None:
        assert self._publisher is not None  # noqa: S101 - set before consuming starts
        try:
            export_id, payload = parse_envelope(message.value)
        except PoisonMessage as exc:
            self.limiter.withdraw()
            log.warning(
                "request sent to the dead-letter topic: %s",
                exc.message,
                extra={"event": "dead_letter", "offset": message.offset, "partition": tp.partition},
            )
            await self._publisher.publish_dead_letter(message, exc)
            self._tracker.finished(tp, message.offset)
            return
        CURRENT_EXPORT.set(export_id)  # this task's logs, and its threads', carry the id
        requested_by = payload.get("requested_by")
        try:
            request = decode_request(payload)
        except InvalidRequest as exc:
            self.limiter.withdraw()
            result = failed_result(
                export_id, exc, fmt=declared_format(payload), source=None, duration_ms=0.0
            )
            await self._publish(result, requested_by if isinstance(requested_by, str) else None)
            self._tracker.finished(tp, message.offset)
            return
        log.info(
            "export received",
            extra={"event": "export_received", "export_id": export_id, "offset": message.offset},
        )
        received = time.monotonic()
        async with self.limiter.slot():
            log.info(
                "export started",
                extra={
                    "event": "export_started",
                    "export_id": export_id,
                    "format": request.format.value,
                    "waited_ms": round((time.monotonic() - received) * 1000, 1),
                },
            )
            self.metrics.export_started(request.format)
            try:
                result = await self.runner.run(request, self._publisher.publish_progress)
            finally:
                self.metrics.export_ended(request.format)
            # Counted before the slot is given up: while results cannot be acknowledged
            # (min.insync.replicas not met), fetching stays paused, with no export more.
            self.limiter.ran()
        try:
            await self._publish(result, request.requested_by)
        finally:
            self.limiter.acknowledged()
        self._tracker.finished(tp, message.offset)

    async def _publish(self, result: ExportResult, requested_by: str | None) -> None:
        assert self._publisher is not None  # noqa: S101 - set before consuming starts
        await self._publisher.publish_result(result)
        self.metrics.result_published(result, requested_by)
        extra: dict[str, Any] = {
            "event": "export_finished",
            "export_id": result.export_id,
            "status": result.status.value,
            "records": result.records,
            "bytes": result.bytes,
            "duration_ms": round(result.duration_ms, 1),
            "replayed": result.replayed,
        }
        if result.error is not None:
            extra["reason"] = result.error.reason.value
            extra["error_message"] = result.error.message
        log.info("export %s", result.status.value, extra=extra)

    async def _commit(self, consumer: AIOKafkaConsumer) -> None:
        assigned = consumer.assignment()
        offsets = {tp: o for tp, o in self._tracker.committable().items() if tp in assigned}
        if not offsets:
            return
        try:
            await consumer.commit(offsets)
        except (CommitFailedError, KafkaError) as exc:
            # The group moved on (rebalance); the new owner redelivers what we did not commit.
            log.warning("commit failed: %s", exc, extra={"event": "commit_failed"})
        else:
            self._tracker.mark_committed(offsets)
            log.debug(
                "offsets committed",
                extra={
                    "event": "offsets_committed",
                    "offsets": {str(tp.partition): o for tp, o in offsets.items()},
                },
            )

    async def partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Commit what finished, cancel the rest, forget the partitions."""
        self.readiness.rebalancing()
        if self._consumer is not None:
            await self._commit(self._consumer)
        doomed = [task for tp in revoked for task in self._tasks.pop(tp, set())]
        for task in doomed:
            task.cancel()
        if doomed:
            await asyncio.wait(doomed)
            log.info(
                "cancelled exports of revoked partitions; the new owner redoes them",
                extra={"event": "exports_cancelled", "count": len(doomed)},
            )
        for tp in revoked:
            self._tracker.forget(tp)
        log.info(
            "partitions revoked",
            extra={
                "event": "partitions_revoked",
                "partitions": sorted(tp.partition for tp in revoked),
            },
        )

    def partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        if self._consumer is not None and self.limiter.full:
            self._consumer.pause(*assigned)
        self.readiness.joined()
        log.info(
            "partitions assigned",
            extra={
                "event": "partitions_assigned",
                "partitions": sorted(tp.partition for tp in assigned),
            },
        )

    async def _drain(self, consumer: AIOKafkaConsumer) -> None:
        """Stop fetching, let running exports finish within the grace period, commit."""
        self.readiness.draining()
        consumer.pause(*consumer.assignment())
        tasks = [task for tasks in self._tasks.values() for task in tasks]
        started = time.monotonic()
        log.info(
            "stopping: fetching paused, %d exports may finish within %gs",
            len(tasks),
            self.settings.shutdown_grace_s,
            extra={"event": "service_draining", "running": len(tasks)},
        )
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=self.settings.shutdown_grace_s)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
        else:
            late = set()
        await self._commit(consumer)
        log.info(
            "export service stopped",
            extra={
                "event": "service_stopped",
                "finished": len(tasks) - len(late),
                "abandoned": len(late),
                "drain_s": round(time.monotonic() - started, 2),
            },
        )

    async def _watch_broker(self, consumer: AIOKafkaConsumer) -> None:
        """Ask the cluster for metadata every few seconds; /readyz says when it cannot."""
        while True:
            try:
                await asyncio.wait_for(consumer.topics(), BROKER_CHECK_TIMEOUT_S)
            except (KafkaError, TimeoutError) as exc:
                why = str(exc) or type(exc).__name__
                if self.readiness.reason is None:
                    log.warning(
                        "broker unreachable: %s", why, extra={"event": "broker_unreachable"}
                    )
                self.readiness.broker_failed(why)
            else:
                if self.readiness.reason is not None and "broker" in self.readiness.reason:
                    log.info("broker reachable again", extra={"event": "broker_reachable"})
                self.readiness.broker_answered()
                with suppress(KafkaError, TimeoutError):
                    await asyncio.wait_for(self._measure_backlog(consumer), BROKER_CHECK_TIMEOUT_S)
            await asyncio.sleep(BROKER_CHECK_S)

    async def _measure_backlog(self, consumer: AIOKafkaConsumer) -> None:
        """Requests on our partitions not yet taken: the queue that pausing leaves in Kafka."""
        assigned = consumer.assignment()
        ends = await consumer.end_offsets(list(assigned)) if assigned else {}
        waiting = 0
        for tp, end in ends.items():
            waiting += max(0, end - await consumer.position(tp))
        self.metrics.backlog.set(waiting)

    async def _sample_memory(self) -> None:
        while True:
            self.metrics.sample_memory()
            await asyncio.sleep(MEMORY_SAMPLE_S)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, service: ExportService) -> None:
        self._service = service

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._service.partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._service.partitions_assigned(assigned)


async def _bounded_step(name: str, step: Callable[[], Awaitable[None]]) -> None:
    """A shutdown step that may wait on the broker: past SHUTDOWN_STEP_S it is given up with
    a warning, so a broker that stopped answering cannot keep the process from exiting."""
    try:
        async with asyncio.timeout(SHUTDOWN_STEP_S):
            await step()
    except TimeoutError:
        log.warning(
            "%s did not finish within %s s at shutdown; going on without it",
            name,
            SHUTDOWN_STEP_S,
            extra={"event": "shutdown_step_abandoned", "step": name},
        )


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("request handler crashed", exc_info=exc, extra={"event": "handler_crashed"})
