"""Instructions per request, counted by callgrind: the one figure that holds from run to run on a
shared, noisy machine.

Each setup runs twice under `valgrind --tool=callgrind`: once serving N requests, once serving
none. Both runs start, answer a readiness probe and shut down the same way, so their difference
divided by N is what one request costs. The mock provider (and Redis, Postgres) run natively;
only the gateways are counted, each tier on its own for edge -> relay.

    .venv/bin/python tests/bench/instructions.py                       # release binaries of this tree
    .venv/bin/python tests/bench/instructions.py --binary A --binary B # compare builds, interleaved

Setups: one gateway (`tensorzero::function_name::function1` on the OpenAI route, non-streaming,
one keep-alive client, the request log line on, as it is by default); the same gateway with the
resilience layers on and unused (circuit breakers, a retry budget, hedging that never fires);
edge -> relay; a relay with
auth and three rate-limit rules in Redis (needs redis-server and PostgreSQL, skipped with
--skip-secured). Results go to tests/bench/results/instructions.{md,json}.
"""

import argparse
import http.client
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
RELEASE = ROOT / "target" / "release"
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "tests" / "python"))
import configs  # noqa: E402

CHAT = "/openai/v1/chat/completions"
PROMPT = [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": "Is Santa real?"}]
FN_BODY = {"model": "tensorzero::function_name::function1", "messages": PROMPT}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    """One keep-alive HTTP/1.1 connection, as a pooled client would hold it."""

    def __init__(self, port):
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def request(self, method, path, body=None, headers=None):
        data = json.dumps(body).encode() if body is not None else None
        self.c.request(method, path, body=data, headers={"content-type": "application/json", **(headers or {})})
        r = self.c.getresponse()
        text = r.read()
        return r.status, text

    def close(self):
        self.c.close()


def wait_ready(port, proc, log, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited:\n{pathlib.Path(log).read_text()[-3000:]}")
        try:
            c = Client(port)
            status, _ = c.request("GET", "/health")
            c.close()
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError(pathlib.Path(log).read_text()[-3000:])


class Counted:
    """A gateway under callgrind."""

    def __init__(self, binary, name, config_text, work, env=None):
        self.name = name
        cfg = work / f"{name}.toml"
        cfg.write_text(config_text)
        self.port = free_port()
        self.out = work / f"{name}.callgrind"
        self.log = work / f"{name}.log"
        if self.out.exists():
            self.out.unlink()
        args = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={self.out}",
                binary, "--config-file", str(cfg), "--bind-address", f"127.0.0.1:{self.port}"]
        environment = {k: v for k, v in os.environ.items() if k not in ("RUST_LOG", "NO_COLOR")}
        self.p = subprocess.Popen(args, stdout=open(self.log, "w"), stderr=subprocess.STDOUT,
                                  env={**environment, **(env or {})})

    def ready(self):
        wait_ready(self.port, self.p, self.log)

    def stop(self):
        """Shuts down gracefully (callgrind writes its counts at exit) and returns them."""
        self.p.send_signal(signal.SIGTERM)
        self.p.wait(timeout=120)
        return total_instructions(self.out)


def total_instructions(path):
    for line in pathlib.Path(path).read_text().splitlines():
        m = re.match(r"(?:summary|totals):\s+(\d+)", line)
        if m:
            return int(m.group(1))
    raise RuntimeError(f"no totals in {path}")


def serve(client, n, body, headers=None):
    for _ in range(n):
        status, text = client.request("POST", CHAT, body, headers)
        if status != 200:
            raise RuntimeError(f"status {status}: {text[:500]!r}")


def run_single(binary, n, mock, work):
    """One gateway: its instruction total after n requests."""
    g = Counted(binary, "gateway", configs.GATEWAY.replace("MOCK", mock).replace("TEMPLATES", str(work)), work)
    g.ready()
    c = Client(g.port)
    serve(c, n, FN_BODY)
    c.close()
    return {"gateway": g.stop()}


def run_resilient(binary, n, mock, work):
    """One gateway with the resilience layers on and unused (configs.GATEWAY_RESILIENT)."""
    cfg = configs.GATEWAY_RESILIENT.replace("MOCK", mock).replace("TEMPLATES", str(work))
    g = Counted(binary, "gateway-resilient", cfg, work)
    g.ready()
    c = Client(g.port)
    serve(c, n, FN_BODY)
    c.close()
    return {"gateway-resilient": g.stop()}


def run_edge_relay(binary, n, mock, work):
    relay = Counted(binary, "relay", configs.GATEWAY.replace("MOCK", mock).replace("TEMPLATES", str(work)), work)
    relay.ready()
    edge = Counted(binary, "edge", configs.EDGE.replace("RELAY", f"127.0.0.1:{relay.port}"), work)
    edge.ready()
    c = Client(edge.port)
    serve(c, n, FN_BODY)
    c.close()
    return {"edge": edge.stop(), "relay": relay.stop()}


def run_secured(binary, n, mock, work, env, key):
    cfg = configs.RELAY_SECURED.replace("MOCK", mock).replace("TEMPLATES", str(work))
    g = Counted(binary, "relay-secured", cfg, work, env)
    g.ready()
    c = Client(g.port)
    serve(c, n, {**FN_BODY, "tensorzero::tags": {"user_id": "bench"}}, {"authorization": f"Bearer {key}"})
    c.close()
    return {"relay-secured": g.stop()}


def per_request(run, n, work=None, profile=0):
    """Instructions per request for each counted process: (run(n) - run(0)) / n. With
    `profile`, also prints that many functions with the most instructions per request (the
    same difference, function by function, exclusive and inclusive)."""
    zero = run(0)
    kept = {}
    if profile:
        for name in zero:
            src = work / f"{name}.callgrind"
            kept[name] = src.with_suffix(".zero.callgrind")
            shutil.copy(src, kept[name])
    full = run(n)
    if profile:
        for name in full:
            for inclusive in (False, True):
                print(f"--- {name}: top {profile} functions, {'inclusive' if inclusive else 'exclusive'}, "
                      "instructions per request", flush=True)
                before = function_costs(kept[name], inclusive)
                after = function_costs(work / f"{name}.callgrind", inclusive)
                diff = sorted(((after[f] - before.get(f, 0)) / n, f) for f in after)
                for cost, function in reversed(diff[-profile:]):
                    print(f"{cost:>10,.0f}  {function[:160]}")
    return {k: (full[k] - zero[k]) / n for k in full}


def function_costs(path, inclusive):
    """Instructions by function, from `callgrind_annotate`."""
    out = subprocess.run(["callgrind_annotate", f"--inclusive={'yes' if inclusive else 'no'}", "--threshold=100",
                          str(path)], capture_output=True, text=True, check=True).stdout
    costs = {}
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+) \([ \d.]+%\)\s+(?:\*\s+)?(.+?)(?: \[.*\])?$", line)
        if m and "PROGRAM TOTALS" not in line:
            function = m.group(2).split(":", 1)[-1] if ":" in m.group(2) else m.group(2)
            costs[function] = costs.get(function, 0) + int(m.group(1).replace(",", ""))
    return costs


def markdown(results, n):
    lines = ["# Instructions per request (callgrind)", "",
             f"{n} requests over one keep-alive connection minus a 0-request run, divided by {n}; "
             "`tests/bench/instructions.py` (see BENCHMARKS.md). Deterministic to within about 0.5%.", "",
             "| build | setup | process | instructions per request |", "|---|---|---|---:|"]
    for r in results:
        for proc, value in r["per_request"].items():
            lines.append(f"| {r['build']} | {r['setup']} | {proc} | {value:,.0f} |")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", "--requests", type=int, default=2000)
    ap.add_argument("--binary", action="append",
                    help="a switchyard binary to count, as PATH or NAME=PATH (repeatable; runs interleave)")
    ap.add_argument("--setup", action="append", choices=["single", "resilient", "edge-relay", "secured"],
                    help="only these setups (repeatable)")
    ap.add_argument("--skip-secured", action="store_true", help="skip the Redis + Postgres setup")
    ap.add_argument("--profile", type=int, default=0, metavar="N",
                    help="also print the N functions with the most instructions per request")
    ap.add_argument("--out", default=str(HERE / "results" / "instructions"), help="results path without extension")
    a = ap.parse_args()
    if not shutil.which("valgrind"):
        sys.exit("valgrind is not installed: apt-get install valgrind")
    named = [b.split("=", 1) if "=" in b else [b, b] for b in (a.binary or [str(RELEASE / "switchyard")])]
    labels = {path: name for name, path in named}
    binaries = [path for _, path in named]
    setups = a.setup or ["single", "resilient", "edge-relay"] + ([] if a.skip_secured else ["secured"])
    work = pathlib.Path(tempfile.mkdtemp(prefix="switchyard-instructions-"))
    print(f"callgrind files and logs: {work}", flush=True)
    for name, text in configs.TEMPLATE_FILES.items():
        (work / name).write_text(text)
    mock_port = free_port()
    mock = subprocess.Popen([str(RELEASE / "mock-provider"), "--bind", f"127.0.0.1:{mock_port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    mock_addr = f"127.0.0.1:{mock_port}"
    cleanups = [mock.terminate]
    results = []
    try:
        secured_env = None
        key = None
        if "secured" in setups:
            from conftest import Postgres
            pg = Postgres(pathlib.Path(tempfile.mkdtemp(prefix="switchyard-instructions-pg-")))
            cleanups.append(pg.stop)
            redis_port = free_port()
            redis = subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", str(work)], stdout=subprocess.DEVNULL)
            cleanups.append(redis.terminate)
            time.sleep(0.3)
            secured_env = {"TENSORZERO_POSTGRES_URL": pg.url, "TENSORZERO_VALKEY_URL": f"redis://127.0.0.1:{redis_port}"}
            admin = lambda *args: subprocess.run([binaries[0], *args], env={**os.environ, **secured_env},  # noqa: E731
                                                 capture_output=True, text=True, check=True).stdout
            admin("--run-postgres-migrations")
            key = admin("--create-api-key").strip()
        runs = {
            "single": lambda b: (lambda n: run_single(b, n, mock_addr, work)),
            "resilient": lambda b: (lambda n: run_resilient(b, n, mock_addr, work)),
            "edge-relay": lambda b: (lambda n: run_edge_relay(b, n, mock_addr, work)),
            "secured": lambda b: (lambda n: run_secured(b, n, mock_addr, work, secured_env, key)),
        }
        for setup in setups:
            # Interleaved: every build's runs of one setup follow each other.
            for binary in binaries:
                counts = per_request(runs[setup](binary), a.requests, work, a.profile)
                row = {"build": labels[binary], "setup": setup, "per_request": counts}
                results.append(row)
                shown = ", ".join(f"{k} {v:,.0f}" for k, v in counts.items())
                print(f"{setup:<11} {labels[binary]}: {shown}", flush=True)
    finally:
        for cleanup in reversed(cleanups):
            try:
                cleanup()
            except Exception:  # noqa: BLE001 - cleanup must not hide the run's own error
                pass
    out = pathlib.Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"requests": a.requests, "results": results}, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(results, a.requests))
    print(markdown(results, a.requests))


if __name__ == "__main__":
    main()
