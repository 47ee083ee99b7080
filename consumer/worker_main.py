"""A worker process's entry point: `python -m consumer.worker_main MODULE:FUNCTION FD ARGS`.

Runs FUNCTION(connection, *ARGS) with a `Connection` on the inherited socket FD; ARGS is
a JSON list. The function returns when the service closes its end (or sends `close`).
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
from multiprocessing.connection import Connection

WORKER_NICENESS = 10


def main(argv: list[str]) -> None:
    target, fd, args = argv
    module, _, name = target.partition(":")
    function = getattr(importlib.import_module(module), name)
    # Ctrl-C in a terminal reaches the whole process group; the service decides when its
    # workers stop (it kills them, or closes their connection).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Workers do the batch work; the service's loop (heartbeats, /metrics, new requests)
    # must get a core as soon as it wakes, even when every core is busy formatting.
    os.nice(WORKER_NICENESS)
    function(Connection(int(fd)), *json.loads(args))


if __name__ == "__main__":
    main(sys.argv[1:])
