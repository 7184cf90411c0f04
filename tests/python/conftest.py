"""Fixtures: the mock provider and the gateway, started as the real binaries on free ports."""

import json
import os
import pathlib
import re
import subprocess
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
TARGET = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "debug"


def doc_block(marker, path=ROOT / "README.md"):
    """The code block that follows `<!-- test: MARKER -->` in a Markdown file (the README by
    default): documentation that tests run as written."""
    match = re.search(r"<!-- test: " + re.escape(marker) + r" -->\s*```\w*\n(.*?)```", path.read_text(), re.S)
    assert match, f"{path.relative_to(ROOT)} has no block marked {marker}"
    return match.group(1)


class Process:
    """A child process whose output is kept in a file so it can be read while it runs."""

    def __init__(self, args, log_path, env=None):
        self.log_path = log_path
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT, env=env)

    def output(self):
        return pathlib.Path(self.log_path).read_text()

    def wait_for(self, pattern, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.output())
            if match:
                return match
            if self.proc.poll() is not None:
                raise RuntimeError(f"process exited early:\n{self.output()}")
            time.sleep(0.05)
        raise TimeoutError(f"{pattern!r} not seen in:\n{self.output()}")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


@pytest.fixture(scope="session")
def mock_provider(tmp_path_factory):
    p = Process([str(TARGET / "mock-provider"), "--bind", "127.0.0.1:0"], tmp_path_factory.mktemp("mock") / "mock.log")
    addr = p.wait_for(r"listening on http://(127\.0\.0\.1:\d+)").group(1)
    yield addr
    p.stop()


def start_gateway(config_path, log_dir, extra_env=None):
    env = {**os.environ, "RUST_LOG": "info", **(extra_env or {})}
    env.pop("TENSORZERO_GATEWAY_BIND_ADDRESS", None)
    p = Process(
        [str(TARGET / "switchyard"), "--config-file", str(config_path), "--bind-address", "127.0.0.1:0", "--log-format", "json"],
        log_dir / "gateway.log",
        env=env,
    )
    line = p.wait_for(r'\{[^\n]*"switchyard listening"[^\n]*\}').group(0)
    return p, json.loads(line)["address"]


@pytest.fixture(scope="session")
def quickstart_gateway(mock_provider, tmp_path_factory):
    """The README's quick-start configuration, pointed at this run's mock provider."""
    d = tmp_path_factory.mktemp("gateway")
    text = (ROOT / "examples/quickstart/tensorzero.toml").read_text()
    assert "127.0.0.1:3030" in text
    config = d / "tensorzero.toml"
    config.write_text(text.replace("127.0.0.1:3030", mock_provider))
    p, addr = start_gateway(config, d)
    yield {"url": f"http://{addr}", "process": p}
    p.stop()


class Postgres:
    """A private PostgreSQL server in a temporary directory (initdb refuses root, so as root it
    runs as the postgres user)."""

    def __init__(self, base):
        import glob
        import socket

        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        assert bins, "PostgreSQL is not installed (tests/run installs it)"
        self.bin = pathlib.Path(bins[-1]).parent
        self.dir = base
        self.as_postgres = os.geteuid() == 0
        if self.as_postgres:
            subprocess.run(["chown", "postgres:", str(base)], check=True)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._run("initdb", "-D", str(base / "data"), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8")
        opts = f"-p {self.port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(base / "data"), "-l", str(base / "pg.log"), "-o", opts, "-w", "start")
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool, *args):
        cmd = [str(self.bin / tool), *args]
        if self.as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True)

    def stop(self):
        self._run("pg_ctl", "-D", str(self.dir / "data"), "-m", "immediate", "stop")


@pytest.fixture(scope="session")
def postgres():
    import shutil
    import tempfile

    # Not under pytest's temporary root: that is private to root, and the server runs as postgres.
    base = pathlib.Path(tempfile.mkdtemp(prefix="switchyard-pg-"))
    pg = Postgres(base)
    yield pg
    pg.stop()
    shutil.rmtree(base, ignore_errors=True)


def switchyard_admin(postgres, *args):
    """Runs a key-administration command; returns its stdout."""
    out = subprocess.run(
        [str(TARGET / "switchyard"), *args],
        env={**os.environ, "TENSORZERO_POSTGRES_URL": postgres.url, "RUST_LOG": "warn"},
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.fixture(scope="session")
def redis(tmp_path_factory):
    """A private Redis on a free port (no persistence); yields its URL."""
    import shutil
    import socket

    server = shutil.which("redis-server")
    assert server, "redis-server is not installed (tests/run installs it)"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    d = tmp_path_factory.mktemp("redis")
    p = Process([server, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(d)], d / "redis.log")
    p.wait_for("Ready to accept connections")
    yield f"redis://127.0.0.1:{port}"
    p.stop()
