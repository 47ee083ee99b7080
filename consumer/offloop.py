"""Work that a cancel must not cut in half: blocking work in a thread, and steps that
must finish once begun."""

from __future__ import annotations

import asyncio
import contextvars
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

T = TypeVar("T")


async def run_off_loop(func: Callable[[], T]) -> T:
    """Run CPU work in a thread; on cancel, wait for it so no one touches its files after."""
    # The thread runs in a copy of this task's context, so its logs carry the export_id.
    context = contextvars.copy_context()
    future = asyncio.get_running_loop().run_in_executor(None, context.run, func)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        # The thread cannot be interrupted; let it finish its batch before unwinding.
        await asyncio.wait([future])
        raise


async def finish_despite_cancel(step: Coroutine[Any, Any, T]) -> T:
    """Run `step` to its end even if the caller is cancelled meanwhile; the cancel is raised
    once it has finished."""
    task = asyncio.ensure_future(step)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait([task])
        raise
