"""The stack under test: the Forgejo test double and the real broker binary.

Both run as child processes of the test session on free loopback ports. The
broker gets a throw-away SQLite store and the fixture child as every user's
MCP server; the double knows alice and bob and a confidential application
for the broker whose redirect URI is the broker's `/oauth/callback`.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# FJMCP_BIN_DIR, else the debug directory of CARGO_TARGET_DIR or of <repo>/target.
BIN_DIR = Path(
    os.environ.get("FJMCP_BIN_DIR")
    or Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target") / "debug"
)

USERS = {"alice": "alice-password", "bob": "bob-password"}
BROKER_CLIENT_ID = "fjmcp-broker-e2e"
BROKER_CLIENT_SECRET = "fjmcp-broker-e2e-secret"

STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


class StackError(RuntimeError):
    """The stack could not be started."""


def binary(name: str) -> Path:
    path = BIN_DIR / name
    if not os.access(path, os.X_OK):
        raise StackError(
            f"{path} is missing or not executable; build the workspace "
            f"(cargo build --workspace) or point FJMCP_BIN_DIR at the binaries"
        )
    return path


def free_port() -> int:
    """A port that was free a moment ago on 127.0.0.1 (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class Stack:
    """A running double + broker pair, and where their logs go."""

    workdir: Path
    # Extra environment for the broker, over the defaults below (e.g. a test-only switch).
    broker_env: dict[str, str] = field(default_factory=dict)
    issuer: str = ""
    forgejo_url: str = ""
    double: subprocess.Popen | None = None
    broker: subprocess.Popen | None = None
    logs: dict[str, Path] = field(default_factory=dict)

    @property
    def mcp_url(self) -> str:
        return f"{self.issuer}/mcp"

    def url(self, path: str) -> str:
        return f"{self.issuer}{path}"

    # -- start -------------------------------------------------------------

    @classmethod
    def start(cls, workdir: Path, attempts: int = 3, broker_env: dict[str, str] | None = None) -> "Stack":
        """Starts both processes; retries with new ports if one was taken meanwhile."""
        last: Exception | None = None
        for attempt in range(attempts):
            stack = cls(workdir=workdir / f"attempt-{attempt}", broker_env=dict(broker_env or {}))
            stack.workdir.mkdir(parents=True, exist_ok=True)
            try:
                stack._start()
                return stack
            except StackError as err:
                last = err
                stack.stop()
        raise StackError(f"stack did not start after {attempts} attempts: {last}")

    def _start(self) -> None:
        port = free_port()
        self.issuer = f"http://127.0.0.1:{port}"
        self._start_double(callback=f"{self.issuer}/oauth/callback")
        self._start_broker(port)

    def _start_double(self, callback: str) -> None:
        log = self.workdir / "forgejo-double.log"
        self.logs["forgejo-double"] = log
        args = [
            str(binary("forgejo-double")),
            "--listen", "127.0.0.1:0",
            "--client-id", BROKER_CLIENT_ID,
            "--client-secret", BROKER_CLIENT_SECRET,
            "--redirect-uri", callback,
        ]
        for login, password in USERS.items():
            args += ["--user", f"{login}:{password}"]
        with open(log, "wb") as stderr:
            self.double = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr
            )
        self.forgejo_url = self._read_listening_line(self.double, log)

    def _read_listening_line(self, process: subprocess.Popen, log: Path) -> str:
        """Waits for "forgejo-double listening on http://…" on the double's stdout."""
        assert process.stdout is not None
        prefix = "forgejo-double listening on "
        deadline = time.monotonic() + STARTUP_TIMEOUT
        buffered = b""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([process.stdout], [], [], 0.2)
            if ready:
                chunk = os.read(process.stdout.fileno(), 4096)
                if not chunk:
                    break
                buffered += chunk
                for line in buffered.decode(errors="replace").splitlines():
                    if line.startswith(prefix):
                        return line[len(prefix):].strip().rstrip("/")
            elif process.poll() is not None:
                break
        raise StackError(
            f"forgejo-double did not report its address (exit {process.poll()}); "
            f"stdout {buffered!r}; log:\n{tail(log)}"
        )

    def _start_broker(self, port: int) -> None:
        log = self.workdir / "fjmcp-broker.log"
        self.logs["fjmcp-broker"] = log
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("FJMCP_") and key != "RUST_LOG"
        }
        env.update(
            {
                "FJMCP_PUBLIC_URL": self.issuer,
                "FJMCP_LISTEN": f"127.0.0.1:{port}",
                "FJMCP_FORGEJO_URL": self.forgejo_url,
                "FJMCP_FORGEJO_CLIENT_ID": BROKER_CLIENT_ID,
                "FJMCP_FORGEJO_CLIENT_SECRET": BROKER_CLIENT_SECRET,
                "FJMCP_STORE": f"sqlite:{self.workdir / 'b.db'}",
                "FJMCP_CHILD_COMMAND": str(binary("fixture-child")),
                "FJMCP_LOG_FORMAT": "json",
            }
        )
        env.update(self.broker_env)
        with open(log, "wb") as out:
            self.broker = subprocess.Popen(
                [str(binary("fjmcp-broker")), "serve"],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.workdir,
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.broker.poll() is not None:
                raise StackError(
                    f"fjmcp-broker exited with {self.broker.returncode} during startup; log:\n{tail(log)}"
                )
            try:
                with urllib.request.urlopen(self.url("/healthz"), timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise StackError(f"fjmcp-broker did not answer /healthz within {STARTUP_TIMEOUT}s; log:\n{tail(log)}")

    # -- stop --------------------------------------------------------------

    def stop(self) -> dict[str, int | None]:
        """SIGTERM to both, SIGKILL after a grace period; returns their exit codes."""
        codes: dict[str, int | None] = {}
        for name, process in (("fjmcp-broker", self.broker), ("forgejo-double", self.double)):
            if process is None:
                continue
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            if process.stdout is not None:
                process.stdout.close()
            codes[name] = process.returncode
        return codes

    def log_tails(self, lines: int = 40) -> str:
        return "\n".join(f"--- {name} ({path}) ---\n{tail(path, lines)}" for name, path in self.logs.items())
