"""`python -m chatbot serve` in a subprocess on a free loopback port: the benchmark's and the tests'.

The server's output goes to a log file (appended, so a restart in the same folder keeps
the first run's lines); `log_tail` quotes it when the server dies or never answers.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import httpx

from chatbot.config import REPO_ROOT


class ServerStartError(RuntimeError):
    """The server stopped, or did not answer in time; the message ends with its log's tail."""


def free_port() -> int:
    """A loopback port free right now (the server re-checks it and says so if taken meanwhile)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """One server process: start, wait until it answers, watch its memory, stop or kill it.

    `env` holds the FAQBOT_* settings of the server; the caller's own FAQBOT_* variables
    are not inherited, so what the server runs with is exactly what `env` says.
    """

    def __init__(
        self, env: Mapping[str, str], log_path: Path, ui: bool = True, args: Sequence[str] = ()
    ):
        self.env = dict(env)
        self.log_path = Path(log_path)
        self.ui = ui
        self.args = tuple(args)  # more `serve` flags, e.g. ("--workers", "3")
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.peak_rss = 0
        self._stop_watch = threading.Event()
        self._watcher: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None, "serveur non démarré"
        return self.proc.pid

    def log_tail(self, chars: int = 3000) -> str:
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text("utf-8", "replace")[-chars:]

    def start(self, watch_memory: bool = False) -> ServerProcess:
        """Launch the server (without waiting for it); with `watch_memory`, sample its RSS (psutil)."""
        self.port = free_port()
        argv = [sys.executable, "-m", "chatbot", "serve", "--host", "127.0.0.1"]
        argv += ["--port", str(self.port)] + ([] if self.ui else ["--no-ui"]) + list(self.args)
        env = {k: v for k, v in os.environ.items() if not k.startswith("FAQBOT_")}
        env.update({"PYTHONUNBUFFERED": "1", **self.env})
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:  # the child keeps its own copy of the descriptor
            # Its own process group: `stop` ends the workers of `serve --workers N` with it.
            self.proc = subprocess.Popen(
                argv,
                cwd=REPO_ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started_at = time.perf_counter()
        if watch_memory:
            self._watcher = threading.Thread(target=self._watch, daemon=True)
            self._watcher.start()
        return self

    def wait_until(
        self,
        ready: Callable[[httpx.Client], httpx.Response],
        timeout: float,
        probe_timeout: float = 30.0,
        interval: float = 0.25,
    ) -> float:
        """Seconds from start until `ready(client)` answers 200; ServerStartError otherwise."""
        assert self.proc is not None, "serveur non démarré"
        deadline = time.perf_counter() + timeout
        with httpx.Client(base_url=self.url, timeout=probe_timeout) as client:
            while time.perf_counter() < deadline:
                if self.proc.poll() is not None:
                    raise ServerStartError(
                        f"le serveur s'est arrêté (code {self.proc.returncode}) ; "
                        f"fin de {self.log_path} :\n{self.log_tail()}"
                    )
                try:
                    if ready(client).status_code == 200:
                        return time.perf_counter() - self.started_at
                except httpx.HTTPError:
                    pass
                time.sleep(interval)  # polling interval, not a measurement
        raise ServerStartError(
            f"le serveur n'a pas répondu en {timeout:.0f} s ; fin de {self.log_path} :\n"
            f"{self.log_tail()}"
        )

    def wait_healthy(self, timeout: float = 120.0) -> float:
        """Seconds from start until /healthz answers and, with the UI, until "/" shows it
        (it is mounted after the server starts: 503 until then)."""
        healthy = self.wait_until(
            lambda c: c.get("/healthz"), timeout, probe_timeout=2.0, interval=0.1
        )
        return self.wait_ui(timeout) if self.ui else healthy

    def wait_ui(self, timeout: float) -> float:
        """Seconds from start until the chat UI answers at "/"; ServerStartError at once if
        the server says it could not build it (503 without Retry-After)."""

        def probe(client: httpx.Client) -> httpx.Response:
            response = client.get("/")
            if response.status_code == 503 and "retry-after" not in response.headers:
                raise ServerStartError(
                    f"l'interface n'a pas pu se charger ; fin de {self.log_path} :\n"
                    f"{self.log_tail()}"
                )
            return response

        return self.wait_until(probe, timeout, probe_timeout=5.0, interval=0.1)

    def wait_first_answer(self, timeout: float) -> float:
        """Seconds from start until /api/chat first answers (the model and index are loaded)."""
        return self.wait_until(
            lambda c: c.post(
                "/api/chat", json={"message": "Combien touche un éditeur pour le SAS ?"}
            ),
            timeout,
        )

    def rss(self) -> int:
        """Resident memory of the server and its children, in bytes (psutil)."""
        import psutil

        try:
            p = psutil.Process(self.pid)
            return int(
                p.memory_info().rss + sum(c.memory_info().rss for c in p.children(recursive=True))
            )
        except psutil.Error:
            return 0

    def high_water_mark(self) -> int | None:
        """The kernel's peak RSS of the server process (Linux), in bytes."""
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return None

    def _watch(self) -> None:
        while not self._stop_watch.wait(0.2):
            self.peak_rss = max(self.peak_rss, self.rss())

    def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer would: no cleanup runs in the server."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 15 s."""
        self._stop_watch.set()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.proc is not None:
            # Whatever the server left behind (its workers, after a SIGKILL of the master).
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        if self._watcher is not None:
            self._watcher.join(timeout=2)
