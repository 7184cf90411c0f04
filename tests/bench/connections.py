"""Memory per idle keep-alive connection: the gateway's RSS with N client connections open and
idle (each has been served one request, as a pooled client leaves them), against its RSS with
none, divided by N.

    .venv/bin/python tests/bench/connections.py                 # 10,000 connections
    .venv/bin/python tests/bench/connections.py -n 2000 --binary target/release/switchyard

It raises its own open-file limit (the gateway inherits it). Prints one line; nothing is
asserted (this is a measurement, not a test).
"""

import argparse
import pathlib
import resource
import socket
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))
import configs  # noqa: E402
from instructions import free_port, wait_ready  # noqa: E402

REQUEST = (b"POST /openai/v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
           b"content-length: %d\r\n\r\n%s")
BODY = b'{"model":"tensorzero::function_name::function1","messages":[{"role":"user","content":"hi"}]}'


def rss_kib(pid):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def serve_once(sock):
    sock.sendall(REQUEST % (len(BODY), BODY))
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, rest = data.split(b"\r\n\r\n", 1)
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
    while len(rest) < length:
        rest += sock.recv(65536)
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(head.decode(errors="replace"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", "--connections", type=int, default=10_000)
    ap.add_argument("--binary", default=str(ROOT / "target" / "release" / "switchyard"))
    a = ap.parse_args()
    want = a.connections + 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(want, hard)), hard))
    work = pathlib.Path(tempfile.mkdtemp(prefix="switchyard-connections-"))
    mock_port, port = free_port(), free_port()
    mock = subprocess.Popen([str(ROOT / "target" / "release" / "mock-provider"), "--bind", f"127.0.0.1:{mock_port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for name, text in configs.TEMPLATE_FILES.items():
        (work / name).write_text(text)
    cfg = work / "gateway.toml"
    cfg.write_text(configs.GATEWAY.replace("MOCK", f"127.0.0.1:{mock_port}").replace("TEMPLATES", str(work)))
    log = work / "gateway.log"
    gateway = subprocess.Popen([a.binary, "--config-file", str(cfg), "--bind-address", f"127.0.0.1:{port}"],
                               stdout=open(log, "w"), stderr=subprocess.STDOUT, env={"RUST_LOG": "warn", "PATH": "/usr/bin:/bin"})
    sockets = []
    try:
        wait_ready(port, gateway, log)
        warm = socket.create_connection(("127.0.0.1", port))
        for _ in range(200):
            serve_once(warm)
        warm.close()
        time.sleep(0.5)
        before = rss_kib(gateway.pid)
        for _ in range(a.connections):
            s = socket.create_connection(("127.0.0.1", port))
            serve_once(s)
            sockets.append(s)
        time.sleep(1.0)
        after = rss_kib(gateway.pid)
        per = (after - before) * 1024 / a.connections
        print(f"{a.connections} idle keep-alive connections: RSS {before / 1024:.1f} MiB -> {after / 1024:.1f} MiB, "
              f"{per:,.0f} bytes per connection")
    finally:
        for s in sockets:
            s.close()
        gateway.terminate()
        mock.terminate()


if __name__ == "__main__":
    main()
