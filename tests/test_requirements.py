"""requirements.txt (what the Makefile installs) and pyproject.toml (what pip reads) agree."""

from __future__ import annotations

import tomllib

from chatbot.config import REPO_ROOT


def _pins(lines: list[str]) -> dict[str, str]:
    pins = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-r"):
            name, _, version = line.partition("==")
            pins[name.lower().split("[")[0]] = version
    return pins


def test_runtime_pins_are_the_same_in_requirements_and_pyproject():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text("utf-8"))["project"]
    txt = (REPO_ROOT / "requirements.txt").read_text("utf-8").splitlines()
    assert _pins(project["dependencies"]) == _pins(txt)
