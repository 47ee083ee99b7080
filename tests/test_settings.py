"""Settings from variables and flags; a bad one stops start-up with one clear line."""

from __future__ import annotations

import subprocess
import sys
import tomllib
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

    def test_output_directory_or_object_storage(self, monkeypatch):
        """Unset or `file://`, outputs go to a directory; `s3://`, to no directory."""
        monkeypatch.delenv("EXPORT_OUTPUT_URL", raising=False)
        monkeypatch.setenv("EXPORT_OUTPUT_DIR", "/srv/out")
        assert load_settings().output_directory == Path("/srv/out")
        assert load_settings({"output_url": "file:///data/x"}).output_directory == Path("/data/x")
        assert load_settings({"output_url": "s3://bucket/prefix"}).output_directory is None

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

    def test_object_storage_settings(self):
        """An s3:// output URL is taken with its endpoint and keys; the secret stays secret,
        and the link lifetime defaults to the contract's hour."""
        settings = load_settings(
            {
                "output_url": "s3://bucket/team/exports",
                "s3_endpoint_url": "http://127.0.0.1:8333",
                "s3_access_key_id": "key",
                "s3_secret_access_key": "hush",
            }
        )
        assert settings.output_url == "s3://bucket/team/exports"
        assert settings.s3_region == "us-east-1"
        assert settings.s3_presign_s == 3600
        assert "hush" not in repr(settings)

    @pytest.mark.parametrize(
        ("url", "why"),
        [
            ("ftp://host/x", "must be s3://bucket/prefix or file:///path"),
            ("s3:///prefix", "names no bucket"),
            ("file://relative", "needs an absolute path"),
        ],
    )
    def test_bad_output_urls_are_named(self, url, why):
        """An output URL the service cannot use stops start-up naming the variable."""
        with pytest.raises(SettingsError, match=r"^bad setting --output-url=") as caught:
            load_settings({"output_url": url})
        assert why in str(caught.value)

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


def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(__import__("os").environ):
        if name.startswith("EXPORT_"):
            monkeypatch.delenv(name)


class TestConfigFile:
    def test_flag_over_variable_over_file_over_default(self, tmp_path, monkeypatch):
        """Each source wins over the ones after it, setting by setting."""
        _clean_env(monkeypatch)
        config = tmp_path / "export.toml"
        config.write_text(
            'group_id = "file"\nrequest_topic = "file.requests"\nmax_in_flight = 3\n'
            "timeout_s = 60\n"
        )
        monkeypatch.setenv("EXPORT_GROUP_ID", "variable")
        monkeypatch.setenv("EXPORT_TIMEOUT_S", "90")
        settings = load_settings({"timeout_s": "30"}, config)
        assert settings.timeout_s == 30  # flag over variable and file
        assert settings.group_id == "variable"  # variable over file
        assert settings.request_topic == "file.requests"  # file over default
        assert settings.max_in_flight == 3
        assert settings.result_topic == "export.results"  # default

    @pytest.mark.parametrize(
        ("content", "message"),
        [
            ("max_in_fligt = 3\n", "has unknown setting 'max_in_fligt'"),
            ("max_in_flight = \n", "is not TOML: Invalid value (at line 1, column 17)"),
            ('max_in_flight = "lots"\n', "bad setting max_in_flight in "),
        ],
    )
    def test_a_bad_file_is_named_with_the_key_at_fault(
        self, tmp_path, monkeypatch, content, message
    ):
        """Unknown keys, broken TOML and bad values name the file and the key."""
        _clean_env(monkeypatch)
        config = tmp_path / "export.toml"
        config.write_text(content)
        with pytest.raises(SettingsError) as caught:
            load_settings({}, config)
        assert message in str(caught.value)
        assert str(config) in str(caught.value)

    def test_a_missing_file_is_one_clear_error(self, tmp_path):
        with pytest.raises(SettingsError, match=r"cannot read the config file .*: No such file"):
            load_settings({}, tmp_path / "absent.toml")


def _config_command(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in __import__("os").environ.items() if not k.startswith("EXPORT_")}
    return subprocess.run(
        [sys.executable, "-m", "consumer.cli", "config", *args],
        capture_output=True, text=True, timeout=60, check=True, env={**clean, **env},
    )  # fmt: skip


def test_config_command_prints_effective_settings_sources_and_masks_secrets(tmp_path):
    """`export-consumer config`: each setting, where it came from, the password hidden;
    its output, used as a config file, gives the same settings."""
    config = tmp_path / "export.toml"
    config.write_text(
        'group_id = "file"\nmax_in_flight = 3\nsecurity_protocol = "SASL_PLAINTEXT"\n'
    )
    env = {"EXPORT_SASL_PLAIN_PASSWORD": "hunter2", "EXPORT_GROUP_ID": "variable"}
    printed = _config_command("--config", str(config), "--timeout-s", "30", env=env).stdout
    lines = printed.splitlines()
    assert 'group_id = "variable"  # variable' in lines
    assert "max_in_flight = 3  # file" in lines
    assert "timeout_s = 30.0  # flag" in lines
    assert 'request_topic = "export.requests"  # default' in lines
    assert '# sasl_plain_password = "**********"  # secret, not shown (variable)' in lines
    assert "hunter2" not in printed
    again = tmp_path / "printed.toml"
    again.write_text(printed)
    reprinted = _config_command("--config", str(again), env={}).stdout
    assert tomllib.loads(reprinted) == tomllib.loads(printed)
    assert all(line.endswith("# file") for line in reprinted.splitlines() if " = " in line[:40]
               and not line.startswith("#"))  # fmt: skip
