"""Log lines as their readers get them: JSON when piped, lines for people at a terminal."""

from __future__ import annotations

import subprocess
import sys

import orjson

from tests.terminal import at_a_terminal

_LOG_ONE = """
import logging, sys
from pathlib import Path
from consumer.logs import configure_logging
from consumer.settings import LogFormat
people_log = Path(sys.argv[2]) if len(sys.argv) > 2 else None
written = configure_logging("INFO", LogFormat(sys.argv[1]), people_log=people_log)
log = logging.getLogger("consumer.service")
log.info("export %s", "completed", extra={"event": "export_finished", "export_id": "inv-1",
         "records": 100})
log.info("partitions assigned", extra={"event": "partitions_assigned"})
print("written:", written)
"""


def _run(*args: str, terminal: bool) -> str:
    """Run the logging snippet with stderr on a pseudo-terminal or a pipe; what it wrote."""
    command = [sys.executable, "-c", _LOG_ONE, *args]
    if terminal:
        status, shown = at_a_terminal(command)
        assert status == 0, shown
        return shown
    proc = subprocess.run(command, capture_output=True, text=True, check=True, timeout=30)
    return proc.stderr + proc.stdout


class TestLogFormat:
    def test_piped_logs_are_json_lines_with_the_export_id(self):
        """Piped (auto), every record is one JSON object carrying its extra fields."""
        lines = [line for line in _run("auto", terminal=False).splitlines() if line[:1] == "{"]
        first = orjson.loads(lines[0])
        assert first["export_id"] == "inv-1"
        assert first["event"] == "export_finished"
        assert first["message"] == "export completed"
        assert first["records"] == 100

    def test_at_a_terminal_run_writes_lines_for_people(self):
        """At a terminal (auto), a record is one short line: time, level, [id], message,
        fields; no JSON."""
        out = _run("auto", terminal=True)
        assert "{" not in out
        line = next(line for line in out.splitlines() if "export completed" in line)
        assert " INFO    [inv-1] export completed records=100" in line

    def test_json_wins_at_a_terminal_when_asked_for(self):
        """EXPORT_LOG_FORMAT=json keeps JSON lines even at a terminal."""
        out = _run("json", terminal=True)
        assert '"export_id":"inv-1"' in out

    def test_dev_at_a_terminal_keeps_json_in_its_file(self, tmp_path):
        """With a people log (dev at a terminal), the file gets every JSON line and the
        terminal only a line per finished export."""
        log_file = tmp_path / "dev.log"
        out = _run("auto", str(log_file), terminal=True)
        assert f"written: {log_file}" in out
        assert "export completed" in out
        assert "partitions assigned" not in out
        entries = [orjson.loads(line) for line in log_file.read_text().splitlines()]
        assert [e["event"] for e in entries] == ["export_finished", "partitions_assigned"]
