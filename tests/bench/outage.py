"""Latency while one of two providers stalls: the same workload against three configurations of
one model (routing = [stalling, healthy]), in one run, so the figures compare:

- `fallback`: the stalling provider's 1 s timeout, then fallback (what TensorZero does);
- `breaker`: a circuit breaker on it (opens after 5 failures; skipped afterwards);
- `hedging`: `hedge_after_ms = 100` (the healthy provider starts after 100 ms).

The stalling provider is the mock's `slow-30000` (it answers after 30 s). Each configuration
serves N requests (default 300) from C concurrent clients (default 10); the report gives p50,
p95, p99 and the maximum, in milliseconds. Figures, not assertions: this machine is shared.

    .venv/bin/python tests/bench/outage.py            # release binaries of this tree
    .venv/bin/python tests/bench/outage.py --binary target/debug/switchyard

Results go to tests/bench/results/outage.{md,json}.
"""

import argparse
import concurrent.futures
import http.client
import json
import pathlib
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))
from instructions import free_port, wait_ready  # noqa: E402

MODEL = """
[models.m]
routing = ["stalling", "healthy"]
EXTRA
[models.m.providers.stalling]
type = "openai"
api_base = "http://MOCK/v1/"
model_name = "slow-30000"
api_key_location = "none"
timeouts = { non_streaming = { total_ms = 1000 } }
BREAKER
[models.m.providers.healthy]
type = "openai"
api_base = "http://MOCK/v1/"
model_name = "healthy"
api_key_location = "none"
"""

SETUPS = {
    "fallback": ("", ""),
    "breaker": ("", "circuit_breaker = { enabled = true, consecutive_failures = 5, cooldown_ms = 60000 }"),
    "hedging": ("hedge_after_ms = 100", ""),
}

BODY = json.dumps({"model_name": "m", "input": {"messages": [{"role": "user", "content": "hi"}]}}).encode()


def one(port):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    began = time.perf_counter()
    c.request("POST", "/inference", body=BODY, headers={"content-type": "application/json"})
    r = c.getresponse()
    r.read()
    c.close()
    if r.status != 200:
        raise RuntimeError(f"status {r.status}")
    return (time.perf_counter() - began) * 1000


def percentile(sorted_ms, p):
    return sorted_ms[min(len(sorted_ms) - 1, int(p / 100 * len(sorted_ms)))]


def run(binary, mock, name, n, clients, work):
    extra, breaker = SETUPS[name]
    cfg = work / f"{name}.toml"
    cfg.write_text(MODEL.replace("MOCK", mock).replace("EXTRA", extra).replace("BREAKER", breaker))
    port = free_port()
    log = open(work / f"{name}.log", "w")
    proc = subprocess.Popen([binary, "--config-file", str(cfg), "--bind-address", f"127.0.0.1:{port}"],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_ready(port, proc, work / f"{name}.log")
        with concurrent.futures.ThreadPoolExecutor(clients) as pool:
            latencies = sorted(pool.map(lambda _: one(port), range(n)))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
    return {"p50_ms": round(percentile(latencies, 50), 1), "p95_ms": round(percentile(latencies, 95), 1),
            "p99_ms": round(percentile(latencies, 99), 1),
            "max_ms": round(latencies[-1], 1), "requests": n}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", "--requests", type=int, default=300)
    ap.add_argument("-c", "--clients", type=int, default=10)
    ap.add_argument("--binary", default=str(ROOT / "target" / "release" / "switchyard"))
    ap.add_argument("--mock", default=str(ROOT / "target" / "release" / "mock-provider"))
    ap.add_argument("--out", default=str(HERE / "results" / "outage"))
    a = ap.parse_args()
    work = pathlib.Path(tempfile.mkdtemp(prefix="switchyard-outage-"))
    mock_port = free_port()
    mock = subprocess.Popen([a.mock, "--bind", f"127.0.0.1:{mock_port}"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    results = {}
    try:
        for name in SETUPS:
            results[name] = run(a.binary, f"127.0.0.1:{mock_port}", name, a.requests, a.clients, work)
            print(name, results[name], flush=True)
    finally:
        mock.terminate()
    lines = ["# One of two providers stalls", "",
             f"`tests/bench/outage.py`: {a.requests} requests from {a.clients} concurrent clients per setup; "
             "the stalling provider has a 1 s timeout. Milliseconds.", "",
             "| setup | p50 | p95 | p99 | max |", "|---|---:|---:|---:|---:|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['p50_ms']} | {r['p95_ms']} | {r['p99_ms']} | {r['max_ms']} |")
    lines += ["", "With the breaker, the requests in flight when it opened (up to one per client, plus the "
              "failures that open it) pay the timeout once; every later one skips the stalled provider."]
    out = pathlib.Path(a.out)
    out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
