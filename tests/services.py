"""Real Redis, PostgreSQL and nginx servers for the tests, on free ports in temporary folders.

Started as /work/shared/ENVIRONMENT.md verified (PostgreSQL as the `postgres` user when the
tests run as root); every class stops its server in `stop()`, which the fixtures call even
when a test fails. A missing binary fails the test with the command that installs it.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from evaluation.server_process import free_port

INSTALL_HINT = (
    "lancez `bash scripts/ensure-services.sh` (paquets Debian redis-server postgresql nginx)"
)


def need_binary(name: str, *candidates: str) -> str:
    """The binary's path; fails the test (never skips it) when it is not installed."""
    for candidate in (name, *candidates):
        found = shutil.which(candidate) or (
            candidate if os.path.isfile(candidate) and os.access(candidate, os.X_OK) else None
        )
        if found:
            return found
    pytest.fail(f"{name} introuvable : {INSTALL_HINT}.", pytrace=False)


def _wait(check: object, what: str, timeout: float, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.05)
    tail = log.read_text("utf-8", "replace")[-2000:] if log and log.exists() else ""
    raise RuntimeError(f"{what} n'a pas démarré en {timeout:.0f} s\n{tail}")


class RedisServer:
    """redis-server without persistence on a free loopback port."""

    def __init__(self, directory: Path) -> None:
        self.binary = need_binary("redis-server", "/usr/bin/redis-server")
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        """Start (or restart, on the same port) the server and wait until it answers."""
        import redis

        self.port = self.port or free_port()
        log = (self.dir / "redis.log").open("ab")
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.dir),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)

        def up() -> bool:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        try:
            _wait(up, "redis-server", 15, self.dir / "redis.log")
        finally:
            client.close()
        return self

    def kill(self) -> None:
        """SIGKILL: Redis vanishes as in a crash (its data, kept only in memory, is lost)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


class PostgresServer:
    """A throwaway PostgreSQL cluster (initdb -A trust) on a free loopback port.

    Its folder is a fresh one under the system's temp dir, not pytest's tmp_path: the
    `postgres` user cannot enter root's 0700 pytest folders. `remove()` deletes it.
    """

    def __init__(self) -> None:
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        if not bins:
            pytest.fail(f"PostgreSQL introuvable : {INSTALL_HINT}.", pytrace=False)
        self.bin = Path(bins[-1])
        self.dir = Path(tempfile.mkdtemp(prefix="faqbot-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"
        self.port = 0
        self.initialised = False

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *argv: str) -> None:
        # PostgreSQL refuses to run as root: as root, run it as the `postgres` user.
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        result = subprocess.run(
            [*prefix, *argv], capture_output=True, text=True, timeout=120, cwd=self.dir
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{Path(argv[0]).name} a échoué ({result.returncode}) :\n"
                f"{result.stdout[-1500:]}\n{result.stderr[-1500:]}"
            )

    def start(self) -> PostgresServer:
        """initdb on the first call, then start (or restart, on the same port) and wait."""
        self.dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        if not self.initialised:
            self._run(
                str(self.bin / "initdb"),
                "-D",
                str(self.data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            )
            self.initialised = True
        self.port = self.port or free_port()
        opts = f"-p {self.port} -k {self.dir} -h 127.0.0.1 -c fsync=off"
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            opts,
            "-l",
            str(self.log),
            "-w",
            "start",
        )
        return self

    def remove(self) -> None:
        """Stop the server and delete its folder."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def stop(self) -> None:
        """Fast shutdown (no-op when not running)."""
        if not self.initialised or not (self.data / "postmaster.pid").exists():
            return
        try:
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
        except RuntimeError:
            self._run(
                str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"
            )


class NginxServer:
    """nginx running a given configuration file, its pid and logs in a temporary folder."""

    def __init__(self, directory: Path, conf_text: str) -> None:
        self.binary = need_binary("nginx", "/usr/sbin/nginx")
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.conf = directory / "nginx.conf"
        self.conf.write_text(conf_text, encoding="utf-8")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, port: int) -> NginxServer:
        import httpx

        globals_ = f"daemon off; pid {self.dir}/nginx.pid; error_log {self.dir}/error.log warn;"
        self.proc = subprocess.Popen(
            [self.binary, "-p", f"{self.dir}/", "-c", str(self.conf), "-g", globals_],
            stdout=(self.dir / "stdout.log").open("ab"),
            stderr=subprocess.STDOUT,
        )

        def up() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    "nginx s'est arrêté :\n"
                    + (self.dir / "error.log").read_text("utf-8", "replace")[-2000:]
                    + (self.dir / "stdout.log").read_text("utf-8", "replace")[-2000:]
                )
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=0.5)
                return True
            except httpx.HTTPError:
                return False

        _wait(up, "nginx", 15, self.dir / "error.log")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful: workers finish, then exit
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
