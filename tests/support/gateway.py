"""A real Tollway server process on a free loopback port, for end-to-end tests."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from tollway.accounts.credentials import CredentialBox
from tollway.config import ensure_data_dir, load_settings
from tollway.store.db import make_engine
from tollway.store.migrate import upgrade_to_head

TEST_SECRET = "e2e-secret-key"


def _masked(text: str) -> str:
    """Server output as tests may show it: the keys and tokens it printed, masked."""
    return re.sub(r"(sk-|tw-admin-)[A-Za-z0-9_-]{4,}", r"\1…", text)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class GatewayProcess:
    """`tollway serve` in a subprocess. Configure the store through `engine`/`box` (the same
    admin services the CLI uses) before `start()`, or while it runs (live within ~0.2 s)."""

    def __init__(self, data_dir: Path, *, database_url: str = "", extra_env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.database_url = database_url
        self.env = {
            **os.environ,
            "TOLLWAY_DATA_DIR": str(data_dir),
            "TOLLWAY_SECRET_KEY": TEST_SECRET,
            "TOLLWAY_CONFIG_POLL_INTERVAL_S": "0.1",
            "TOLLWAY_UPSTREAM_READ_TIMEOUT_S": "3",
            **({"TOLLWAY_DATABASE_URL": database_url} if database_url else {}),
            **(extra_env or {}),
        }
        settings = ensure_data_dir(
            load_settings({"data_dir": str(data_dir), "database_url": database_url or None, "secret_key": TEST_SECRET})
        )
        self.engine: Engine = make_engine(settings.effective_database_url)
        upgrade_to_head(self.engine)
        self.box = CredentialBox(TEST_SECRET)
        self.process: subprocess.Popen[str] | None = None
        self.output = ""
        self.admin_token: str | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *args: str, timeout_s: float = 30.0) -> GatewayProcess:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tollway", "serve", "--host", "127.0.0.1", "--port", str(self.port), *args],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                output = self.process.stdout.read() if self.process.stdout else ""
                raise RuntimeError(f"tollway serve exited early:\n{_masked(output)}")
            try:
                with urllib.request.urlopen(f"{self.root_url}/api/health", timeout=0.5) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        else:
            self.stop()
            raise RuntimeError("tollway serve did not become ready")
        return self

    def read_banner(self) -> str:
        """What serve printed before it started listening (admin token, demo key)."""
        assert self.process is not None and self.process.stdout is not None
        os.set_blocking(self.process.stdout.fileno(), False)
        chunk = self.process.stdout.read() or ""
        self.output += chunk
        match = re.search(r"tw-admin-[A-Za-z0-9_-]+", self.output)
        if match:
            self.admin_token = match.group(0)
        return self.output

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks run."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        """SIGINT then wait: the graceful path (flushes logs, releases leases)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def close(self) -> None:
        self.stop()
        self.engine.dispose()

    def __enter__(self) -> GatewayProcess:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
