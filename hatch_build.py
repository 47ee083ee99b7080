"""Builds `consumer._csvrows` (the CSV rows formatters, `consumer/csvrows/*.c`) with the wheel.

In place for editable installs, into the wheel otherwise. A C compiler and the Python
headers are needed (Debian: gcc and python3-dev); without them the install stops here,
rather than leaving a service that is quietly several times slower.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

SOURCES = Path("consumer") / "csvrows"


class CsvRowsBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        # setuptools knows each platform's compiler and flags; hatchling does not compile.
        from setuptools import Distribution, Extension  # noqa: PLC0415 - build time only
        from setuptools.command.build_ext import build_ext  # noqa: PLC0415

        # Paths relative to the root, as setuptools wants them; the headers as
        # dependencies, so a changed header rebuilds the module in place too.
        found = sorted(path.name for path in (Path(self.root) / SOURCES).iterdir())
        sources = [str(SOURCES / name) for name in found if name.endswith(".c")]
        headers = [str(SOURCES / name) for name in found if name.endswith(".h")]
        extension = Extension("consumer._csvrows", sources, depends=headers, optional=False)
        command = build_ext(Distribution({"ext_modules": [extension], "script_name": "-"}))
        command.inplace = True
        command.ensure_finalized()
        command.run()
        built = Path(self.root) / command.get_ext_filename("consumer._csvrows")
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        if version != "editable":
            build_data["force_include"][str(built)] = str(built.relative_to(self.root))
