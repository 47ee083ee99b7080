"""Blocking work in a thread without letting a cancel leave the thread running unseen."""

from __future__ import annotations

import asyncio
import contextvars
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable

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
