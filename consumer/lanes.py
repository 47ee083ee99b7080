"""Formatting in worker processes (lanes), so exports use every core and never the loop's.

Decoding JSON and formatting rows is the CPU work of a CSV, JSON Lines, Parquet or
workbook export; in the service's own process all exports would share one core. Each
export checks out a worker (from a pool like the PDF one) and, for the formats whose file
is its pieces end to end (CSV, JSON Lines), while the machine has cores no other export
needs, more of them: its lanes. With gzip each reply's bytes are one gzip member, and a
file of members end to end is one gzip file (RFC 1952), so lanes compress in parallel too.

Each fetch goes to the lanes in turn, in pieces: a range's as whole record batches, which
the lane reads the records out of (`consumer.record_batches`), a window's as its merged
messages. A lane decodes and formats one piece at a time and sends back its bytes and
bad-record findings, which the service takes in the order the pieces were sent, so the
file's rows keep the topic's order and the bad-record limit is counted in offset order.
Pieces and rows travel in memory the service shares with the lane (`lane_slots.py`)
where they fit, else on its pipe. While a thread waits for a lane the event loop is free
and the next fetch is under way. A lane holds at most two pieces, the one it formats and
the next, and sends its replies from a thread (compressing them there, with gzip), so it
is never idle waiting for the service and neither side blocks on the other's full pipe.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import os
import queue
import struct
import threading
from collections import deque
from typing import TYPE_CHECKING, Any, NamedTuple

from consumer import lane_slots
from consumer.heap import reuse_lane_buffers
from consumer.lane_slots import LaneMemory
from consumer.record_batches import batch_messages
from consumer.runner_core import Tally, skip_bad, write_messages
from consumer.structs import ExportFormat
from consumer.workers import WorkerPool, error_reply, raise_reply
from consumer.writers.files import FileSpec, open_writer
from consumer.writers.gzip_members import gzip_member

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence
    from multiprocessing.connection import Connection

    from consumer.runner_core import SourceMessage
    from consumer.source.fetch import FetchedBatches
    from consumer.structs import SourceRange
    from consumer.workers import Worker
    from consumer.writers import Sink, Writer

MAX_LANES = 4
"""Workers one export may use; more than the cores only adds processes."""
LANE_DEPTH = 2
"""Pieces a lane may hold: the one it formats and the next, so it never waits on us."""
SEND_BYTES = 4 * 1024 * 1024
"""A lane sends what it has written once it holds this much, before its reply."""
PIECE_BYTES = 512 * 1024
"""A fetch goes to the lanes in pieces of about this many bytes of message values: a
piece's decoded records are what a worker holds at once."""


class RawMessage(NamedTuple):
    """A source message as it crosses the pipe: its offset and value only."""

    offset: int
    value: bytes | None


def _serve(conn: Connection) -> None:  # pragma: no cover - runs in the worker
    """The worker: one export at a time; each reply carries bytes, records and bad ones.

    Replies go out from a thread of their own, so this loop is always back in `recv`
    soon: the service may have sent the next piece while this one was formatted, and
    neither side may wait on the other's full pipe.
    """
    reuse_lane_buffers()
    replies: queue.SimpleQueue[Outgoing | None] = queue.SimpleQueue()
    sender = threading.Thread(target=_send_replies, args=(conn, replies), daemon=True)
    sender.start()
    try:
        _work(conn, replies)
    finally:
        replies.put(None)
        sender.join()


class _Reply(NamedTuple):
    """A reply as the lane's main loop hands it to the thread that sends it."""

    kind: str
    """`ok` (a command's reply) or `more` (bytes ahead of it)."""
    data: bytes
    """What the writer wrote, not yet compressed."""
    gzip: bool
    memory: LaneMemory | None
    """Where an `ok` reply's bytes go when they fit (else on the pipe)."""
    counts: tuple[Any, ...] = ()
    """An `ok` reply's records and bad ones."""

    def packed(self) -> tuple[Any, ...]:
        """The message: the bytes compressed to one gzip member with gzip (ISA-L lets go
        of the GIL, so the lane formats its next piece meanwhile), and placed in the shared
        memory where they fit."""
        data = gzip_member(self.data) if self.gzip and self.data else self.data
        if self.kind == "ok":
            return ("ok", _reply_bytes(self.memory, data), *self.counts)
        return (self.kind, data)


Outgoing = _Reply | tuple[Any, ...]
"""A reply, or an error as `error_reply` makes it."""


def _send_replies(conn: Connection, replies: queue.SimpleQueue[Outgoing | None]) -> None:
    while (reply := replies.get()) is not None:
        try:
            conn.send(_message(reply))
        except OSError:  # the service is gone; the main loop ends at its next recv
            return


def _message(reply: Outgoing) -> tuple[Any, ...]:
    """The reply as sent; one that cannot be packed fails its command (the service then
    abandons the export and its lanes), rather than ending this thread unanswered."""
    if not isinstance(reply, _Reply):
        return reply
    try:
        return reply.packed()
    except Exception as exc:  # noqa: BLE001 - the process boundary: report, don't die
        return error_reply(exc, *(reply.counts or (0, [])))


class _ReplySink:
    """A lane's sink: past `SEND_BYTES` what is written goes to the service at once, as a
    `more` reply ahead of the command's own, so a file that is written all at the end (a
    workbook's package) never sits whole in the lane, nor in one message on the pipe."""

    def __init__(self, replies: queue.SimpleQueue[Outgoing | None], *, gzip: bool = False) -> None:
        self._replies = replies
        self.gzip = gzip
        self._buffer = io.BytesIO()

    def write(self, data: bytes | memoryview) -> int:
        self._buffer.write(data)
        if self._buffer.tell() >= SEND_BYTES:
            self._replies.put(_Reply("more", self.take(), self.gzip, None))
        return len(data)

    def take(self) -> bytes:
        """What was written since the last take."""
        data = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        return data


def _work(conn: Connection, replies: queue.SimpleQueue[Outgoing | None]) -> None:
    writer: Writer | None = None
    sink = _ReplySink(replies)
    max_batch_bytes = 0
    memory: LaneMemory | None = None
    while True:
        try:
            command, *args = conn.recv()
        except EOFError:
            return
        if command == "memory":  # shared with the service from now on; no reply
            if memory is not None:
                memory.close()
            memory = LaneMemory.receive(conn, args[0])
            continue
        tally = Tally()
        bad: list[tuple[int, str, int]] = []
        try:
            if command == "begin":
                spec, max_batch_bytes = args
                sink = _ReplySink(replies, gzip=spec.gzip)
                writer = open_writer(spec)
                writer.begin(sink)
            elif command in {"add", "messages", "batches"} and writer is not None:
                on_bad = functools.partial(_note_bad, bad)
                messages = _messages(memory, command, args)
                _write_piece(writer, messages, tally, max_batch_bytes, on_bad)
            elif command == "finish" and writer is not None:
                writer.finish()
                writer.close()
                writer = None
            else:
                return
            replies.put(_Reply("ok", sink.take(), sink.gzip, memory, (tally.records, bad)))
        except Exception as exc:  # noqa: BLE001 - the process boundary: report, don't die
            if writer is not None:
                writer.close()
            writer = None
            replies.put(error_reply(exc, tally.records, bad))


def _messages(
    memory: LaneMemory | None, command: str, args: list[Any]
) -> Iterable[tuple[int, bytes | None]]:
    """A piece's messages: as the service sent them (`add`, or packed in a slot:
    `messages`), or read out of its fetched batches (`batches`: the bytes or their slot,
    then the range and key wanted)."""
    if command == "add":
        messages: list[tuple[int, bytes | None]] = args[0]
        return messages
    if command == "messages":
        return unpack_messages(_piece(memory, args[0]))
    where, *wanted = args
    return batch_messages(_piece(memory, where), *wanted)


_ENTRY = struct.Struct(">qi")
"""A packed message's offset and its value's length (-1: no value)."""


def packed_size(piece: list[tuple[int, bytes | None]]) -> int:
    return sum(_ENTRY.size + len(value or b"") for _, value in piece)


def pack_messages(piece: list[tuple[int, bytes | None]], into: memoryview) -> None:
    """Messages end to end, written into `into` (`packed_size` bytes): each its offset and
    length, then its value."""
    pos = 0
    for offset, value in piece:
        _ENTRY.pack_into(into, pos, offset, -1 if value is None else len(value))
        pos += _ENTRY.size
        if value:
            into[pos : pos + len(value)] = value
            pos += len(value)


def unpack_messages(data: bytes | memoryview) -> Iterator[tuple[int, bytes | None]]:
    """The messages `pack_messages` packed."""
    pos, size = 0, len(data)
    while pos < size:
        offset, length = _ENTRY.unpack_from(data, pos)
        pos += _ENTRY.size
        if length < 0:
            yield offset, None
        else:
            yield offset, bytes(data[pos : pos + length])
            pos += length


def _piece(memory: LaneMemory | None, where: bytes | tuple[int, int]) -> bytes | memoryview:
    """A piece of batches as sent: its bytes, or (slot, size) in the shared memory."""
    if isinstance(where, bytes):
        return where
    if memory is None:
        raise RuntimeError("a piece in shared memory, but none was shared")
    return memory.piece(*where)


def _reply_bytes(memory: LaneMemory | None, data: bytes) -> bytes | tuple[int, int]:
    """A reply's bytes, or where they are in the shared memory."""
    if memory is None or not data or not memory.fits(len(data)):
        return data
    return memory.put_reply(data)


def _write_piece(
    writer: Writer,
    piece: Iterable[tuple[int, bytes | None]],
    tally: Tally,
    max_batch_bytes: int,
    on_bad: Callable[[int, str, int], None],
) -> None:
    """Each message straight from its JSON text to rows where C takes it; the rest
    decoded, with the bad-record rules, as the service would."""
    write_json = getattr(writer, "write_json", None)
    for offset, value in piece:
        if write_json is not None and value is not None and len(value) <= max_batch_bytes:
            records = write_json(value)
            if records is not None:
                tally.records += records
                continue
        write_messages(writer, [RawMessage(offset, value)], tally, max_batch_bytes, on_bad)


def _note_bad(bad: list[tuple[int, str, int]], offset: int, problem: str, count: int) -> None:
    bad.append((offset, problem, count))


class LanePool(WorkerPool):
    def __init__(
        self, size: int, cores: int | None = None, load: Callable[[], int] | None = None
    ) -> None:
        super().__init__(size, _serve, (), "lane-worker")
        self.cores = cores or os.cpu_count() or 1
        self._load = load or (lambda: 1)
        """Exports this instance has taken on (running or waiting for a slot)."""
        self._memory: dict[Worker, LaneMemory] = {}

    def memory_of(self, lane: Worker) -> LaneMemory | None:
        """The memory shared with `lane`, made and handed over on first use (None where
        there is no `memfd`: everything then takes the pipe)."""
        if not lane_slots.AVAILABLE:
            return None
        with self._lock:
            memory = self._memory.get(lane)
        if memory is None:
            self._drop_dead_lanes_memory()
            memory = LaneMemory.create(LANE_DEPTH)
            try:
                lane.send("memory", LANE_DEPTH)
                lane.send_handle(memory.fd)
            except BaseException:
                memory.close()
                raise
            with self._lock:
                self._memory[lane] = memory
        return memory

    def checkin(self, worker: Worker, *, reusable: bool) -> None:
        super().checkin(worker, reusable=reusable)
        if worker.conn.closed:  # killed: its memory goes too
            self._drop_memory(worker)

    def stop(self) -> None:
        super().stop()
        with self._lock:
            lanes = list(self._memory)
        for lane in lanes:
            self._drop_memory(lane)

    def _drop_dead_lanes_memory(self) -> None:
        """Lanes that died idle are closed by the pool when found: their memory goes too."""
        with self._lock:
            dead = [lane for lane in self._memory if lane.conn.closed]
        for lane in dead:
            self._drop_memory(lane)

    def _drop_memory(self, lane: Worker) -> None:
        with self._lock:
            memory = self._memory.pop(lane, None)
        if memory is not None:
            memory.close()

    def spare_lanes(self) -> int:
        """Workers an export may take beyond its first: the cores no other export needs."""
        return max(0, min(self.cores, MAX_LANES) - max(self._load(), 1))


class LaneWriter:
    """An export's writing, done by its lanes; the service only moves bytes."""

    def __init__(self, pool: LanePool, spec: FileSpec, limits: tuple[int, int]) -> None:
        self._pool = pool
        self._spec = spec
        self._max_bad_records, self._max_batch_bytes = limits
        self._lanes: list[Worker] = []
        self._pending: deque[Worker] = deque()
        """The lane of each piece sent whose reply is not taken yet, oldest first."""
        self._sent = 0
        self._sink: Sink | None = None

    def begin(self, sink: Sink, tally: Tally) -> None:
        self._sink = sink
        self._lanes.append(self._pool.checkout())
        wanted = self._pool.spare_lanes() if self._spec.splittable else 0
        while wanted > 0 and (extra := self._pool.checkout_below(self._pool.cores)) is not None:
            self._lanes.append(extra)
            wanted -= 1
        # The first lane writes the BOM and the header; the others only rows.
        spec = self._spec
        rows_only = dataclasses.replace(
            spec, options=dataclasses.replace(spec.options, header=False, bom=False)
        )
        for index, lane in enumerate(self._lanes):
            lane.send("begin", spec if index == 0 else rows_only, self._max_batch_bytes)
            self._collect(lane, tally)

    def write_messages(self, messages: Sequence[SourceMessage], tally: Tally) -> None:
        if not messages:  # the source is quiet: take every reply, so the tally is current
            while self._pending:
                self._collect(self._pending.popleft(), tally)
            return
        piece: list[tuple[int, bytes | None]] = []
        size = 0
        for message in messages:
            piece.append((message.offset, message.value))
            size += len(message.value or b"")
            if size >= PIECE_BYTES:
                self._send_messages(piece, tally)
                piece, size = [], 0
        if piece:
            self._send_messages(piece, tally)

    def write_batches(self, fetched: FetchedBatches, source: SourceRange, tally: Tally) -> None:
        """A fetch's record batches as the broker sent them: the lanes read the records of
        `source`'s range and key out of them, a piece of whole batches each."""
        if not fetched.ends:
            self.write_messages((), tally)  # the source is quiet
            return
        key = source.key.encode() if source.key is not None else None
        wanted = (source.start_offset, source.end_offset, key)
        data = memoryview(fetched.data)
        piece_start = 0
        for end in fetched.ends:
            if end - piece_start >= PIECE_BYTES or end == fetched.ends[-1]:
                lane = self._next_lane(tally)
                memory = self._pool.memory_of(lane)
                piece = data[piece_start:end]
                if memory is not None and memory.fits(len(piece)):
                    lane.send("batches", memory.put_piece(piece), *wanted)
                else:
                    lane.send("batches", bytes(piece), *wanted)
                self._pending.append(lane)
                piece_start = end

    def _send_messages(self, piece: list[tuple[int, bytes | None]], tally: Tally) -> None:
        """A piece of messages (a window's, merged): packed into the lane's memory where it
        fits, else pickled onto the pipe."""
        lane = self._next_lane(tally)
        memory = self._pool.memory_of(lane)
        size = packed_size(piece)
        if memory is not None and memory.fits(size):
            where, space = memory.piece_space(size)
            pack_messages(piece, space)
            lane.send("messages", where)
        else:
            lane.send("add", piece)
        self._pending.append(lane)

    def _send(self, tally: Tally, *command: Any) -> None:
        lane = self._next_lane(tally)
        lane.send(*command)
        self._pending.append(lane)

    def _next_lane(self, tally: Tally) -> Worker:
        """The lane to send to next, once it holds fewer than `LANE_DEPTH` pieces."""
        # Lanes in turn, so the oldest reply is always from the lane sent to next.
        while len(self._pending) >= len(self._lanes) * LANE_DEPTH:
            self._collect(self._pending.popleft(), tally)
        lane = self._lanes[self._sent % len(self._lanes)]
        self._sent += 1
        return lane

    def finish(self, tally: Tally) -> None:
        while self._pending:
            self._collect(self._pending.popleft(), tally)
        for lane in self._lanes:
            lane.send("finish")
            self._collect(lane, tally)
        lanes, self._lanes = self._lanes, []
        for lane in lanes:
            # pyarrow stays loaded in a process that imported it (about 95 MB resident):
            # a lane that wrote Parquet retires, and the next export starts a fresh one.
            self._pool.checkin(lane, reusable=self._spec.format is not ExportFormat.PARQUET)

    def close(self) -> None:
        """An export not finished is abandoned: its lanes are killed, not reused."""
        lanes, self._lanes = self._lanes, []
        for lane in lanes:
            self._pool.checkin(lane, reusable=False)

    def _reply_data(self, lane: Worker, where: bytes | tuple[int, int]) -> bytes | memoryview:
        """A reply's bytes: sent on the pipe, or where they are in the shared memory (read
        before the next piece goes to that lane, which frees their slot)."""
        if isinstance(where, bytes):
            return where
        memory = self._pool.memory_of(lane)
        if memory is None:
            raise RuntimeError("a reply in shared memory, but none was shared")
        return memory.reply(*where)

    def _collect(self, lane: Worker, tally: Tally) -> None:
        """Take a lane's oldest reply: write its bytes, count its records and bad ones."""
        if self._sink is None:
            raise RuntimeError("begin() was not called")
        reply: tuple[Any, ...] = lane.receive_reply()
        while reply[0] == "more":  # bytes ahead of the reply
            self._sink.write(reply[1])
            reply = lane.receive_reply()
        *head, records, bad = reply
        tally.records += records
        for offset, problem, count in bad:
            skip_bad(tally, self._max_bad_records, offset, problem, count)
        if head[0] == "error":
            raise_reply(tuple(head))
        if where := head[1]:
            self._sink.write(self._reply_data(lane, where))
