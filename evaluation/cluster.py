"""N server processes behind deploy/nginx.conf, run for real: the tests' and the benchmark's.

`Cluster.start` launches the processes (all loading at once), then nginx with the very
deploy/nginx.conf, only its ports and log folder changed (`nginx_conf`); `stop()` stops them
all. `RedisServer` and `NginxServer` run the real servers on free loopback ports in a given
folder; a missing binary raises `ServiceMissing` with the command that installs it.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from chatbot.config import REPO_ROOT
from evaluation.server_process import ServerProcess, free_port

CONF = REPO_ROOT / "deploy" / "nginx.conf"
UPSTREAM_PORTS = (7861, 7862, 7863)
INSTALL_HINT = (
    "lancez `bash scripts/ensure-services.sh` (paquets Debian redis-server postgresql nginx)"
)


class ServiceMissing(RuntimeError):
    """A server binary (redis-server, nginx) is not installed; the message says how to install it."""


def find_binary(name: str, *candidates: str) -> str:
    """The binary's path, from PATH or the given absolute candidates; ServiceMissing otherwise."""
    for candidate in (name, *candidates):
        found = shutil.which(candidate)
        if found:
            return found
    raise ServiceMissing(f"{name} introuvable : {INSTALL_HINT}.")


def wait_for(check: Callable[[], bool], what: str, timeout: float, log: Path | None = None) -> None:
    """Poll `check` until true; RuntimeError quoting the log's tail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    tail = log.read_text("utf-8", "replace")[-2000:] if log and log.exists() else ""
    raise RuntimeError(f"{what} n'a pas démarré en {timeout:.0f} s\n{tail}")


def nginx_conf(listen: int, ports: list[int], log_dir: Path) -> str:
    """deploy/nginx.conf for `len(ports)` processes: its ports and log folder, nothing else changed.

    Fewer ports than the file's three upstreams drop the extra `server` lines.
    """
    text = CONF.read_text("utf-8")
    assert text.count("listen 8080;") == 1
    text = text.replace("listen 8080;", f"listen 127.0.0.1:{listen};")
    assert 1 <= len(ports) <= len(UPSTREAM_PORTS)
    for n, default in enumerate(UPSTREAM_PORTS):
        assert text.count(f"127.0.0.1:{default} ") == 1
        if n < len(ports):
            text = text.replace(f"127.0.0.1:{default} ", f"127.0.0.1:{ports[n]} ")
        else:
            text = re.sub(rf"\n *server 127\.0\.0\.1:{default} [^\n]*", "", text)
    return text.replace("/var/log/nginx/", f"{log_dir}/")


class RedisServer:
    """redis-server without persistence on a free loopback port."""

    def __init__(self, directory: Path, binary: str | None = None) -> None:
        self.binary = binary or find_binary("redis-server", "/usr/bin/redis-server")
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
        argv = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.dir),
        ]
        self.proc = subprocess.Popen(
            [*argv, "--save", "", "--appendonly", "no"], stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)

        def up() -> bool:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        try:
            wait_for(up, "redis-server", 15, self.dir / "redis.log")
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


class NginxServer:
    """nginx running a given configuration file, its pid and logs in a temporary folder."""

    def __init__(self, directory: Path, conf_text: str, binary: str | None = None) -> None:
        self.binary = binary or find_binary("nginx", "/usr/sbin/nginx")
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.conf = directory / "nginx.conf"
        self.conf.write_text(conf_text, encoding="utf-8")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, port: int) -> NginxServer:
        import httpx

        globals_ = f"daemon off; pid {self.dir}/nginx.pid; error_log {self.dir}/error.log warn;"
        with (self.dir / "stdout.log").open("ab") as out:
            self.proc = subprocess.Popen(
                [self.binary, "-p", f"{self.dir}/", "-c", str(self.conf), "-g", globals_],
                stdout=out,
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

        wait_for(up, "nginx", 15, self.dir / "error.log")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful: workers finish, then exit
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@dataclass
class Cluster:
    """`python -m chatbot serve --no-ui` processes under /faq/ behind nginx (round robin)."""

    servers: list[ServerProcess]
    nginx: NginxServer | None = None
    port: int = 0
    database_url: str = ""
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/faq"

    @classmethod
    def start(
        cls,
        directory: Path,
        env: Mapping[str, str],
        processes: int = 3,
        nginx_binary: str | None = None,
        timeout: float = 120.0,
    ) -> Cluster:
        """Start the processes (FAQBOT_ROOT_PATH=/faq) and nginx in front; each process has
        its own data dir unless `env` sets FAQBOT_DATA_DIR (one machine sharing its index).

        On any failure what was started is stopped before the error goes up.
        """
        common = {"FAQBOT_ROOT_PATH": "/faq", **env}
        servers = [
            ServerProcess(
                {"FAQBOT_DATA_DIR": str(directory / f"p{n}"), **common},
                directory / f"p{n}" / "server.log",
                ui=False,
            )
            for n in range(processes)
        ]
        cluster = cls(servers, database_url=common.get("FAQBOT_DATABASE_URL", ""), env=common)
        try:
            for server in servers:  # all load at once
                server.start()
            for server in servers:
                server.wait_healthy(timeout=timeout)
            cluster.port = free_port()
            log_dir = directory / "nginx"
            conf = nginx_conf(cluster.port, [s.port for s in servers], log_dir)
            cluster.nginx = NginxServer(log_dir, conf, nginx_binary).start(cluster.port)
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def upstream(self, address: str) -> int:
        """The index of the process listening at nginx's `$upstream_addr` (host:port)."""
        port = int(address.rsplit(":", 1)[1])
        return next(n for n, s in enumerate(self.servers) if s.port == port)

    def access_log(self) -> list[tuple[str, str, str]]:
        """(request line, status, upstream address) of each request, in order."""
        assert self.nginx is not None
        out = []
        for line in (self.nginx.dir / "faqbot-access.log").read_text().splitlines():
            m = re.search(r'"([^"]*)" (\d{3}) (\S+) ', line)
            if m:
                out.append((m.group(1), m.group(2), m.group(3)))
        return out

    def stop(self) -> None:
        if self.nginx is not None:
            self.nginx.stop()
        for server in self.servers:
            server.stop()


__all__ = [
    "Cluster",
    "NginxServer",
    "RedisServer",
    "ServiceMissing",
    "find_binary",
    "nginx_conf",
    "wait_for",
]
