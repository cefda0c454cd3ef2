"""The image, read from the Dockerfile: multi-stage on a version-pinned slim Python base,
wheels built in the builder, no compiler in the final stage, a numeric non-root user,
byte-code precompiled so the root filesystem can be read-only, and `chronicle` (the
console script the wheel installs) as the entrypoint. .dockerignore sends only the
sources the wheel is built from."""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field

import pytest

from tests.deploy.manifests import PROCESSES, REPO_ROOT

COMPILERS = re.compile(r"\b(build-essential|gcc|g\+\+|clang|make)\b")


@dataclass
class Stage:
    image: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def logical_lines(text: str) -> list[str]:
    """Instructions with their continuation lines joined, comments dropped."""
    lines: list[str] = []
    buffer = ""
    for raw in text.splitlines():
        if raw.lstrip().startswith("#"):
            continue
        if raw.endswith("\\"):
            buffer += raw[:-1] + " "
            continue
        buffer += raw
        if buffer.strip():
            lines.append(buffer.strip())
        buffer = ""
    return lines


def parse() -> tuple[dict[str, str], list[Stage]]:
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical_lines((REPO_ROOT / "Dockerfile").read_text(encoding="utf-8")):
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
        elif keyword == "FROM":
            image, _, alias = rest.partition(" AS ")
            image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image.strip())
            stages.append(Stage(image, alias.strip()))
        else:
            stages[-1].instructions.append((keyword, rest))
    return args, stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse()[1]


def test_multi_stage_on_a_pinned_slim_python(stages: list[Stage]) -> None:
    assert len(stages) >= 2
    for stage in stages:
        assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", stage.image)
    assert stages[-1].image == stages[0].image  # the final stage does not inherit the builder


def test_wheels_are_built_in_the_builder(stages: list[Stage]) -> None:
    builder = stages[0]
    assert any("pip wheel" in run for run in builder.all("RUN"))
    assert any(COMPILERS.search(run) for run in builder.all("RUN"))


def test_final_stage_installs_the_wheels_without_compilers(stages: list[Stage]) -> None:
    final = stages[-1]
    runs = final.all("RUN")
    assert not any(COMPILERS.search(run) for run in runs)
    assert not final.all("COPY"), "sources stay in the builder"
    install = [run for run in runs if "pip install" in run]
    assert install
    assert all("--no-index" in run and f"from={stages[0].name}" in run for run in install)


def test_final_stage_runs_as_a_numeric_non_root_user(stages: list[Stage]) -> None:
    (user,) = stages[-1].all("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit()
    assert int(uid) > 0
    assert not gid or (gid.isdigit() and int(gid) > 0)


def test_entrypoint_is_the_installed_console_script(stages: list[Stage]) -> None:
    (entrypoint,) = stages[-1].all("ENTRYPOINT")
    assert json.loads(entrypoint) == ["chronicle"]
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "chronicle" in project["project"]["scripts"]
    assert any(re.search(r"pip install .*\bchronicle\b", run) for run in stages[-1].all("RUN"))


def test_read_only_root_friendly(stages: list[Stage]) -> None:
    env = " ".join(stages[-1].all("ENV"))
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert "CHRONICLE_HTTP_HOST=0.0.0.0" in env


def test_exposes_every_process_port(stages: list[Stage]) -> None:
    exposed = {int(p) for line in stages[-1].all("EXPOSE") for p in line.split()}
    assert exposed == {p.port for p in PROCESSES.values()}


def test_builder_copies_every_package_and_dockerignore_lets_them_in(stages: list[Stage]) -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = [p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]]
    copied = " ".join(stages[0].all("COPY"))
    ignore = (REPO_ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    allowed = [line for line in ignore if line and not line.startswith("#")]
    assert allowed[0] == "*", "the build context is an allow-list"
    for package in packages:
        assert re.search(rf"\b{package}\b", copied), package
        assert f"!{package}/" in allowed, package
