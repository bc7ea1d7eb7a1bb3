"""Real Redis, PostgreSQL and nginx servers for the tests, on free ports in temporary folders.

Started as /work/shared/ENVIRONMENT.md verified (PostgreSQL as the `postgres` user when the
tests run as root); every class stops its server in `stop()`, which the fixtures call even
when a test fails. A missing binary fails the test with the command that installs it.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from evaluation import cluster
from evaluation.cluster import INSTALL_HINT
from evaluation.server_process import free_port


def need_binary(name: str, *candidates: str) -> str:
    """The binary's path; fails the test (never skips it) when it is not installed."""
    for candidate in (name, *candidates):
        found = shutil.which(candidate) or (
            candidate if os.path.isfile(candidate) and os.access(candidate, os.X_OK) else None
        )
        if found:
            return found
    pytest.fail(f"{name} introuvable : {INSTALL_HINT}.", pytrace=False)


class RedisServer(cluster.RedisServer):
    """redis-server without persistence on a free loopback port (evaluation/cluster.py)."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory, need_binary("redis-server", "/usr/bin/redis-server"))


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


class NginxServer(cluster.NginxServer):
    """nginx running a given configuration file (evaluation/cluster.py)."""

    def __init__(self, directory: Path, conf_text: str) -> None:
        super().__init__(directory, conf_text, need_binary("nginx", "/usr/sbin/nginx"))
