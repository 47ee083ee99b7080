"""Settings from variables and flags; a bad one stops start-up with one clear line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from consumer.errors import SettingsError
from consumer.settings import load_settings


class TestSettings:
    def test_contract_defaults(self, monkeypatch):
        """With nothing set, the defaults are the contract's."""
        for name in list(__import__("os").environ):
            if name.startswith("EXPORT_"):
                monkeypatch.delenv(name)
        settings = load_settings()
        assert settings.bootstrap_servers == "127.0.0.1:9092"
        assert settings.group_id == "export-consumer"
        assert settings.request_topic == "export.requests"
        assert settings.result_topic == "export.results"
        assert settings.dlq_topic == "export.requests.dlq"
        assert settings.output_dir == Path("./exports")
        assert settings.max_in_flight == 5
        assert settings.timeout_s == 300
        assert (settings.metrics_host, settings.metrics_port) == ("0.0.0.0", 9400)

    def test_variables_then_flags(self, monkeypatch):
        """A variable overrides the default; a flag overrides the variable."""
        monkeypatch.setenv("EXPORT_MAX_IN_FLIGHT", "3")
        monkeypatch.setenv("EXPORT_OUTPUT_DIR", "/srv/out")
        settings = load_settings({"max_in_flight": "7"})
        assert settings.max_in_flight == 7
        assert settings.output_dir == Path("/srv/out")

    def test_bad_variable_names_the_variable(self, monkeypatch):
        """A malformed variable is reported by its name and value."""
        monkeypatch.setenv("EXPORT_MAX_IN_FLIGHT", "many")
        with pytest.raises(SettingsError, match=r"^bad setting EXPORT_MAX_IN_FLIGHT='many': "):
            load_settings()

    def test_bad_flag_names_the_flag(self):
        """A malformed flag is reported as the flag."""
        with pytest.raises(SettingsError, match=r"^bad setting --metrics-port='99999': "):
            load_settings({"metrics_port": "99999"})

    def test_out_of_range_values_are_refused(self):
        """Zero slots or a zero deadline make no sense and are refused."""
        for field in ("max_in_flight", "timeout_s"):
            with pytest.raises(SettingsError):
                load_settings({field: "0"})

    def test_security_options_reach_the_client(self):
        """SASL settings become aiokafka keyword arguments; the password stays secret."""
        settings = load_settings(
            {
                "security_protocol": "SASL_PLAINTEXT",
                "sasl_mechanism": "SCRAM-SHA-256",
                "sasl_plain_username": "svc",
                "sasl_plain_password": "s3cret",
            }
        )
        options = settings.kafka_client_options()
        assert options["security_protocol"] == "SASL_PLAINTEXT"
        assert options["sasl_mechanism"] == "SCRAM-SHA-256"
        assert options["sasl_plain_password"] == "s3cret"
        assert "s3cret" not in repr(settings)


def test_cli_bad_setting_is_one_line_and_exit_2():
    """`export-consumer run` with a bad setting prints one line and exits 2."""
    proc = subprocess.run(
        [sys.executable, "-m", "consumer.cli", "run", "--max-in-flight", "lots"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("export-consumer: bad setting --max-in-flight='lots'")
