"""Commands run on a pseudo-terminal, as a person at a terminal runs them."""

from __future__ import annotations

import os
import pty
import re
import subprocess
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def at_a_terminal(
    command: list[str], cwd: Path | None = None, env: dict[str, str] | None = None
) -> tuple[int, str]:
    """Run `command` with stdout and stderr on a pseudo-terminal; its exit status and the
    lines the terminal shows (carriage-return redraws and escape sequences resolved)."""
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=terminal, stderr=terminal, cwd=cwd,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "TERM": "xterm", **(env or {})},
    )  # fmt: skip
    os.close(terminal)
    chunks = []
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: every writer closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(controller)
    status = proc.wait(timeout=300)
    text = _ESCAPE.sub("", b"".join(chunks).decode(errors="replace"))
    shown = [line.rstrip("\r").rsplit("\r", 1)[-1] for line in text.split("\n")]
    return status, "\n".join(line for line in shown if line.strip())
