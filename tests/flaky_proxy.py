"""A proxy in front of the test S3 server that can answer like a struggling store: throttle
(503 SlowDown) a number of requests, or stop accepting connections, then recover."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Self

from consumer.broker import free_port

SLOW_DOWN = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\n"
    b"Connection: close\r\nContent-Length: %d\r\n\r\n%s"
)
SLOW_DOWN_BODY = (
    b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>SlowDown</Code>"
    b"<Message>Please reduce your request rate.</Message></Error>"
)


class FlakyProxy:
    """Forwards one request per connection to `upstream_port` (asking both ends to close
    after it, so every request passes here), unless told to fail it."""

    def __init__(self, upstream_port: int) -> None:
        self._upstream_port = upstream_port
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.throttle_next = 0
        """Requests still to answer with 503 SlowDown."""
        self.throttled = 0
        """Requests answered with 503 so far."""
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Accept connections (again, after `stop()`)."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def stop(self) -> None:
        """Refuse connections and drop the open ones: the store stops answering."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._one_request(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _one_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        if self.throttle_next > 0:
            self.throttle_next -= 1
            self.throttled += 1
            writer.write(SLOW_DOWN % (len(SLOW_DOWN_BODY), SLOW_DOWN_BODY))
            await writer.drain()
            return
        lines = [
            line
            for line in head.split(b"\r\n")
            if line and not line.lower().startswith(b"connection:")
        ]
        head = b"\r\n".join([*lines, b"Connection: close", b"", b""])
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._upstream_port)
        try:
            up_writer.write(head)
            body = asyncio.create_task(_pipe(reader, up_writer))
            await _pipe(up_reader, writer)
            body.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await body
        finally:
            up_writer.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(64 * 1024):
        writer.write(data)
        await writer.drain()
