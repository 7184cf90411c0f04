#!/usr/bin/env python3
"""switchyard's benchmark harness: added latency, throughput, CPU, memory and start-up, measured
against the direct-call floor and the TensorZero Gateway in the same run.

Everything runs on this machine: the mock provider (release build), the gateways, and the load
generator (oha, open-loop at a fixed rate with latency correction, plus a saturation run).
Results go to tests/bench/results/ as JSON and a markdown table. See BENCHMARKS.md.
"""

import argparse
import datetime
import http.client
import json
import os
import pathlib
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "tests" / "python"))
sys.path.insert(0, str(HERE))

import configs  # noqa: E402

RELEASE = ROOT / "target" / "release"
CLK = os.sysconf("SC_CLK_TCK")
PROMPT = [{"role": "user", "content": "Is Santa real?"}]


class OtlpSink:
    """An OTLP/gRPC trace receiver (what the gateway exports to by default) that counts exports
    and discards them without decoding, so the collector costs as little as it can."""

    def __init__(self):
        from concurrent import futures

        import grpc

        def export(request, context):
            self.exports += 1
            return b""  # an empty ExportTraceServiceResponse

        handler = grpc.method_handlers_generic_handler(
            "opentelemetry.proto.collector.trace.v1.TraceService",
            {"Export": grpc.unary_unary_rpc_method_handler(export)},
        )
        self.exports = 0
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        self.server.add_generic_rpc_handlers((handler,))
        self.url = f"http://127.0.0.1:{self.server.add_insecure_port('127.0.0.1:0')}"
        self.server.start()

    def stop(self):
        self.server.stop(grace=None)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """A child process with its log in a file, and its CPU time and memory from /proc."""

    def __init__(self, name, args, workdir, env=None):
        self.name = name
        self.log_path = workdir / f"{name}.log"
        self.log = open(self.log_path, "w")
        self.started = time.monotonic()
        self.p = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})

    def cpu_seconds(self):
        fields = pathlib.Path(f"/proc/{self.p.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK

    def _status(self, key):
        for line in pathlib.Path(f"/proc/{self.p.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024  # MiB
        return None

    def rss_mib(self):
        return self._status("VmRSS")

    def peak_rss_mib(self):
        return self._status("VmHWM")

    def stop(self):
        self.p.terminate()
        try:
            self.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.p.kill()
        self.log.close()


def post(port, path, body, headers=None, timeout=5):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("POST", path, body=json.dumps(body), headers={"content-type": "application/json", **(headers or {})})
        r = c.getresponse()
        r.read()
        return r.status
    finally:
        c.close()


def wait_ok(proc, port, path, body, headers=None, timeout=60):
    """Seconds from the process's start to its first 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.p.poll() is not None:
            raise RuntimeError(f"{proc.name} exited:\n{proc.log_path.read_text()[-3000:]}")
        try:
            if post(port, path, body, headers, timeout=2) == 200:
                return time.monotonic() - proc.started
        except OSError:
            pass
        time.sleep(0.001)
    raise TimeoutError(f"{proc.name} gave no 200 within {timeout} s:\n{proc.log_path.read_text()[-3000:]}")


def find_oha():
    oha = shutil.which("oha") or str(pathlib.Path.home() / ".cargo" / "bin" / "oha")
    if not pathlib.Path(oha).exists():
        print("installing oha from crates.io (once; about 15 minutes on 2 cores)...", flush=True)
        subprocess.run(["cargo", "install", "oha", "--locked"], check=True)
    return oha


def oha(binary, port, path, body, headers, rate, seconds, connections):
    args = [binary, "--no-tui", "-z", f"{seconds}s", "-c", str(connections), "-m", "POST",
            "-H", "content-type: application/json", "-d", json.dumps(body), "--output-format", "json"]
    for k, v in (headers or {}).items():
        args += ["-H", f"{k}: {v}"]
    if rate:
        args += ["-q", str(rate), "--latency-correction"]
    args.append(f"http://127.0.0.1:{port}{path}")
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def summarize(raw):
    p = raw.get("latencyPercentiles", {})
    codes = raw.get("statusCodeDistribution", {})
    ok = int(codes.get("200", 0))
    total = sum(int(v) for v in codes.values())
    # Requests still in flight when oha's clock runs out are cut off by oha itself; they are
    # not the gateway's errors.
    cut_off = {k: int(v) for k, v in raw.get("errorDistribution", {}).items() if "deadline" in k}
    other = {k: int(v) for k, v in raw.get("errorDistribution", {}).items() if "deadline" not in k}
    errors = (total - ok) + sum(other.values())
    ms = lambda k: (p.get(k) or 0) * 1000  # noqa: E731
    return {"p50_ms": ms("p50"), "p90_ms": ms("p90"), "p99_ms": ms("p99"), "p99.9_ms": ms("p99.9"),
            "throughput_rps": raw["summary"]["requestsPerSec"], "ok": ok, "errors": errors,
            "error_kinds": {**other, **{f"HTTP {k}": int(v) for k, v in codes.items() if k != "200"}},
            "cut_off_at_end": sum(cut_off.values())}


def stream_probe(port, path, body, headers=None, n=50):
    """Time to the first byte and the gaps between SSE events, over n sequential streams."""
    ttfb, gaps = [], []
    payload = json.dumps({**body, "stream": True})
    for _ in range(n):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        t0 = time.perf_counter()
        c.request("POST", path, body=payload, headers={"content-type": "application/json", **(headers or {})})
        r = c.getresponse()
        first = True
        last = None
        buf = b""
        while True:
            chunk = r.read1(65536)
            if not chunk:
                break
            now = time.perf_counter()
            if first:
                ttfb.append(now - t0)
                first = False
            events = (buf + chunk).count(b"\n\n") - buf.count(b"\n\n")
            buf = (buf + chunk)[-4:]
            if last is not None and events:
                gaps.append((now - last) / events)
            last = now
        c.close()
    pct = lambda xs, q: sorted(xs)[min(len(xs) - 1, int(q * len(xs)))] * 1000 if xs else 0  # noqa: E731
    return {"ttfb_p50_ms": pct(ttfb, 0.5), "ttfb_p99_ms": pct(ttfb, 0.99),
            "gap_p50_ms": pct(gaps, 0.5), "gap_p99_ms": pct(gaps, 0.99)}


def concurrent_streams(proc, port, path, body, headers=None, streams=500):
    """Opens `streams` streaming requests at once and reads them all to the end: the gateway's
    CPU per SSE event delivered and its RSS at the peak (sampled while they run)."""
    import asyncio
    import threading

    payload = json.dumps({**body, "stream": True}).encode()
    head = (f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
            + f"content-length: {len(payload)}\r\nconnection: close\r\n\r\n").encode()

    async def one():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(head + payload)
        await writer.drain()
        events, tail = 0, b""
        while chunk := await reader.read(65536):
            events += (tail + chunk).count(b"data:")
            tail = chunk[-4:]
        writer.close()
        return events

    async def run_all():
        return await asyncio.gather(*(one() for _ in range(streams)))

    rss, done = [proc.rss_mib()], threading.Event()

    def sample():
        while not done.wait(0.02):
            rss.append(proc.rss_mib())

    sampler = threading.Thread(target=sample)
    sampler.start()
    cpu0, t0 = proc.cpu_seconds(), time.monotonic()
    counts = asyncio.run(run_all())
    wall, cpu = time.monotonic() - t0, proc.cpu_seconds() - cpu0
    done.set()
    sampler.join()
    events = sum(counts)
    return {"streams": streams, "events": events, "complete_streams": sum(1 for c in counts if c >= 200),
            "wall_s": wall, "cpu_us_per_event": cpu * 1e6 / max(1, events),
            "rss_before_mib": rss[0], "rss_peak_mib": max(rss)}


class Bench:
    def __init__(self, args):
        self.args = args
        self.work = pathlib.Path(tempfile.mkdtemp(prefix="switchyard-bench-"))
        self.oha = find_oha()
        self.results = {"setups": [], "streaming": []}

    def gateway(self, name, config_text, env=None):
        cfg = self.work / f"{name}.toml"
        cfg.write_text(config_text)
        port = free_port()
        proc = Proc(name, [str(RELEASE / "switchyard"), "--config-file", str(cfg), "--bind-address", f"127.0.0.1:{port}"],
                    self.work, {"RUST_LOG": "warn", **(env or {})})
        return proc, port

    def peer(self, name, config_text):
        cfg = self.work / f"{name}.toml"
        cfg.write_text(config_text)
        code = ("import sys, time, tensorzero.tensorzero as t\n"
                f"g = t._start_http_gateway(config_file={str(cfg)!r}, clickhouse_url=None, postgres_url=None, valkey_url=None, async_setup=False)\n"
                "print(g.base_url, flush=True)\nwhile True: time.sleep(3600)\n")
        proc = Proc(name, [str(ROOT / ".venv" / "bin" / "python"), "-c", code], self.work, {"RUST_LOG": "warn"})
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            text = proc.log_path.read_text()
            for line in text.splitlines():
                if line.startswith("http://"):
                    return proc, int(line.split(":")[2].split("/")[0])
            time.sleep(0.02)
        raise TimeoutError(proc.log_path.read_text())

    def measure(self, label, procs, port, path, body, headers=None, floor=None, fresh=True):
        """Runs the rates against `procs` (the gateway first); `fresh` when it was just started,
        so its start-up time is meaningful."""
        start_s = wait_ok(procs[0], port, path, body, headers) if procs else 0.0
        idle = sum(p.rss_mib() for p in procs) if procs else None
        oha(self.oha, port, path, body, headers, 500, 2, self.args.connections)  # warm-up
        rows = []
        for rate in self.args.rates + [None]:
            cpu0 = [p.cpu_seconds() for p in procs]
            raw = oha(self.oha, port, path, body, headers, rate, self.args.seconds, self.args.connections)
            cpu = [p.cpu_seconds() - c0 for p, c0 in zip(procs, cpu0)]
            row = {"rate": rate or "saturation", **summarize(raw)}
            n = max(1, row["ok"] + row["errors"])
            row["cpu_s_per_10k"] = sum(cpu) * 10000 / n if procs else None
            # Each process's share too (the gateway first), to tell a gateway's cost from its
            # store's (redis-server) or its peer tier's.
            row["cpu_s_per_10k_by_process"] = {p.name: c * 10000 / n for p, c in zip(procs, cpu)}
            if floor:
                base = next((f for f in floor if f["rate"] == row["rate"]), None)
                if base:
                    for q in ("p50_ms", "p90_ms", "p99_ms", "p99.9_ms"):
                        row["added_" + q] = row[q] - base[q]
            rows.append(row)
            print(f"  {label:<34} {str(row['rate']):>10}  p50 {row['p50_ms']:7.2f}  p99 {row['p99_ms']:8.2f}  "
                  f"rps {row['throughput_rps']:8.0f}  err {row['errors']}", flush=True)
        result = {"setup": label, "startup_ms": start_s * 1000 if procs and fresh else None, "idle_rss_mib": idle if fresh else None,
                  "peak_rss_mib": sum(p.peak_rss_mib() for p in procs) if procs else None, "rows": rows}
        self.results["setups"].append(result)
        return rows

    def run(self):
        a = self.args
        mock_port = free_port()
        mock = Proc("mock", [str(RELEASE / "mock-provider"), "--bind", f"127.0.0.1:{mock_port}"], self.work)
        time.sleep(0.3)
        mock_addr = f"127.0.0.1:{mock_port}"
        chat = "/openai/v1/chat/completions"
        fn_body = {"model": "tensorzero::function_name::function1", "messages": PROMPT}
        model_body = {"model": "tensorzero::model_name::gpt-4.1-mini", "messages": PROMPT}
        templates = self.work / "templates"
        templates.mkdir(exist_ok=True)
        for name, text in configs.TEMPLATE_FILES.items():
            (templates / name).write_text(text)
        gw_cfg = configs.GATEWAY.replace("MOCK", mock_addr).replace("TEMPLATES", str(templates))
        templated_body = {"model": "tensorzero::function_name::templated", "messages": [
            {"role": "system", "content": [{"type": "tensorzero::template", "name": "system", "arguments": {"assistant_name": "Alfred"}}]},
            {"role": "user", "content": [{"type": "tensorzero::template", "name": "user", "arguments": {"question": "Is Santa real?"}}]},
        ]}
        procs = []
        try:
            print("floor: the load generator straight to the mock provider", flush=True)
            floor = self.measure("floor (mock direct)", [], mock_port, "/v1/chat/completions",
                                 {"model": "gpt-4.1-mini", "messages": PROMPT})

            if not a.only:
                gw, gw_port = self.gateway("switchyard", gw_cfg)
                procs.append(gw)
                self.measure("switchyard, function_name", [gw], gw_port, chat, fn_body, floor=floor)
                self.measure("switchyard, model_name", [gw], gw_port, chat, model_body, floor=floor, fresh=False)
                self.measure("switchyard, templated function", [gw], gw_port, chat, templated_body, floor=floor, fresh=False)

                # The same gateway with OTLP trace export on, into a collector that accepts and
                # discards (its cost is the collector's, not the gateway's).
                collector = OtlpSink()
                traced_cfg = gw_cfg + "\n[gateway.export.otlp.traces]\nenabled = true\n"
                traced, traced_port = self.gateway("switchyard-traced", traced_cfg,
                                                   {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": collector.url})
                procs.append(traced)
                wait_ok(traced, traced_port, chat, fn_body)
                self.measure("switchyard, function_name, OTLP traces on", [traced], traced_port, chat, fn_body, floor=floor)
                traced.stop()
                procs.remove(traced)
                print(f"  the collector received {collector.exports} exports", flush=True)
                collector.stop()

                relay, relay_port = self.gateway("relay", gw_cfg)
                wait_ok(relay, relay_port, chat, fn_body)
                edge, edge_port = self.gateway("edge", configs.EDGE.replace("RELAY", f"127.0.0.1:{relay_port}"))
                procs += [relay, edge]
                self.measure("switchyard edge -> relay", [edge, relay], edge_port, chat, fn_body, floor=floor)

            if not a.skip_secured and a.only in (None, "secured"):
                from conftest import Postgres
                pg_dir = pathlib.Path(tempfile.mkdtemp(prefix="switchyard-bench-pg-"))
                pg = Postgres(pg_dir)
                env = {"TENSORZERO_POSTGRES_URL": pg.url}
                admin = lambda *args: subprocess.run([str(RELEASE / "switchyard"), *args], env={**os.environ, **env},  # noqa: E731
                                                     capture_output=True, text=True, check=True).stdout
                admin("--run-postgres-migrations")
                key = admin("--create-api-key").strip()
                headers = {"authorization": f"Bearer {key}"}
                body = {**fn_body, "tensorzero::tags": {"user_id": "bench"}}
                secured_cfg = configs.RELAY_SECURED.replace("MOCK", mock_addr).replace("TEMPLATES", str(templates))
                # Postgres is configured (for the keys), so the in-process store is asked for by name.
                memory_cfg = secured_cfg + '[rate_limiting]\nbackend = "memory"\n'
                sec, sec_port = self.gateway("relay-auth-rl-memory", memory_cfg, env)
                procs.append(sec)
                self.measure("relay, auth + 3 rules, in-process", [sec], sec_port, chat, body, headers, floor=floor)
                sec.stop()
                procs.remove(sec)
                redis_port = free_port()
                redis = Proc("redis", ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                                       "--appendonly", "no", "--dir", str(self.work)], self.work)
                time.sleep(0.3)
                sec, sec_port = self.gateway("relay-auth-rl-redis", secured_cfg,
                                             {**env, "TENSORZERO_VALKEY_URL": f"redis://127.0.0.1:{redis_port}"})
                procs.append(sec)
                self.measure("relay, auth + 3 rules, Redis", [sec, redis], sec_port, chat, body, headers, floor=floor)
                sec.stop()
                procs.remove(sec)
                redis.stop()
                # Buckets in Postgres (TensorZero's choice with only TENSORZERO_POSTGRES_URL set).
                sec, sec_port = self.gateway("relay-auth-rl-postgres", secured_cfg, env)
                procs.append(sec)
                self.measure("relay, auth + 3 rules, Postgres", [sec], sec_port, chat, body, headers, floor=floor)
                sec.stop()
                procs.remove(sec)
                pg.stop()

            if not a.skip_peer and not a.only:
                peer, peer_port = self.peer("tensorzero-embedded", gw_cfg)
                procs.append(peer)
                self.measure("TensorZero 2026.6 (embedded, pip)", [peer], peer_port, chat, fn_body, floor=floor)
            for i, binary in enumerate([] if a.only else a.peer_bin or []):
                port = free_port()
                cfg = self.work / f"peer{i}.toml"
                cfg.write_text(gw_cfg)
                p = Proc(f"peer-bin-{i}", [binary, "--config-file", str(cfg), "--bind-address", f"127.0.0.1:{port}"],
                         self.work, {"RUST_LOG": "warn"})
                procs.append(p)
                self.measure(f"peer binary {pathlib.Path(binary).name}", [p], port, chat, fn_body, floor=floor)

            if a.only == "store":
                # The cost of storing every inference (TensorZero's layout in Postgres), beside
                # the same gateway with the store off, in one run against one database.
                from conftest import Postgres
                pg_dir = pathlib.Path(tempfile.mkdtemp(prefix="switchyard-bench-store-"))
                pg = Postgres(pg_dir)
                env = {"TENSORZERO_POSTGRES_URL": pg.url}
                subprocess.run([str(RELEASE / "switchyard"), "--run-postgres-migrations"], env={**os.environ, **env},
                               capture_output=True, text=True, check=True)
                for label, extra in [
                    ("store off (observability.enabled = false)", "[gateway.observability]\nenabled = false\n"),
                    ("async writes (the default)", ""),
                    ("batch writes (100 ms, 1000 rows)", "[gateway.observability]\nasync_writes = false\n"
                     "[gateway.observability.batch_writes]\nenabled = true\n"),
                ]:
                    g, port = self.gateway("switchyard-store", extra + gw_cfg, env)
                    procs.append(g)
                    self.measure(label, [g], port, chat, fn_body, floor=floor)
                    g.stop()
                    procs.remove(g)
                written = subprocess.run(
                    [str(pg.bin / "psql"), "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres", "-tAc",
                     "SELECT count(*) FROM tensorzero.chat_inferences"], capture_output=True, text=True).stdout.strip()
                self.results["store_rows_written"] = written
                print(f"  rows in tensorzero.chat_inferences after the run: {written}", flush=True)
                pg.stop()
                return self.results
            if a.only == "secured":
                return self.results
            print("streaming: time to first byte and gap between chunks (sequential streams)", flush=True)
            drip = {"model": "drip-2", "messages": PROMPT}
            self.results["streaming"].append({"setup": "floor (mock direct)", **stream_probe(mock_port, "/v1/chat/completions", drip)})
            stream_cfg = self.work / "stream.toml"
            stream_cfg.write_text(gw_cfg.replace('model_name = "gpt-4.1-mini"', 'model_name = "drip-2"'))
            sgw, sport = self.gateway("switchyard-stream", stream_cfg.read_text())
            procs.append(sgw)
            wait_ok(sgw, sport, chat, fn_body)
            self.results["streaming"].append({"setup": "switchyard", **stream_probe(sport, chat, fn_body)})
            if not a.skip_peer:
                speer, speer_port = self.peer("tensorzero-stream", stream_cfg.read_text())
                procs.append(speer)
                wait_ok(speer, speer_port, chat, fn_body)
                self.results["streaming"].append({"setup": "TensorZero 2026.6 (embedded, pip)", **stream_probe(speer_port, chat, fn_body)})
            print("500 concurrent streams of 200 events: CPU per event and RSS", flush=True)
            self.results["concurrent_streams"] = [{"setup": "switchyard", **concurrent_streams(sgw, sport, chat, fn_body)}]
            if not a.skip_peer:
                self.results["concurrent_streams"].append(
                    {"setup": "TensorZero 2026.6 (embedded, pip)", **concurrent_streams(speer, speer_port, chat, fn_body)})
            for s in self.results["concurrent_streams"]:
                print(f"  {s['setup']:<34} {s['complete_streams']}/{s['streams']} complete, {s['events']} events in "
                      f"{s['wall_s']:.2f} s, {s['cpu_us_per_event']:.2f} CPU-us/event, RSS {s['rss_before_mib']:.1f} -> "
                      f"{s['rss_peak_mib']:.1f} MiB", flush=True)
            for s in self.results["streaming"]:
                print(f"  {s['setup']:<34} ttfb p50 {s['ttfb_p50_ms']:.2f} p99 {s['ttfb_p99_ms']:.2f}  gap p50 {s['gap_p50_ms']:.2f} p99 {s['gap_p99_ms']:.2f}")

            if a.soak and not a.only:
                print(f"soak: {a.soak} s at 2,000/s on one gateway, RSS sampled", flush=True)
                samples = []
                end = time.monotonic() + a.soak
                while time.monotonic() < end:
                    oha(self.oha, gw_port, chat, fn_body, None, 2000, 10, a.connections)
                    samples.append(gw.rss_mib())
                self.results["soak"] = {"seconds": a.soak, "rss_mib": samples}
                print(f"  RSS from {samples[0]:.1f} to {samples[-1]:.1f} MiB (max {max(samples):.1f})")
        finally:
            for p in procs:
                p.stop()
            mock.stop()
        return self.results


def markdown(results, meta):
    lines = [f"# Benchmark results ({meta['date']})", "",
             f"Machine: {meta['machine']}; {meta['cpus']} CPUs; oha at a fixed rate with latency correction, "
             f"{meta['connections']} connections, {meta['seconds']} s per run; times in ms.", "",
             "| setup | rate | p50 | p90 | p99 | p99.9 | added p50 | added p99 | req/s | errors | CPU s / 10k req |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    f = lambda v: "-" if v is None else (f"{v:.2f}" if isinstance(v, float) else str(v))  # noqa: E731
    for s in results["setups"]:
        for r in s["rows"]:
            lines.append(f"| {s['setup']} | {r['rate']} | {f(r['p50_ms'])} | {f(r['p90_ms'])} | {f(r['p99_ms'])} | {f(r['p99.9_ms'])} | "
                         f"{f(r.get('added_p50_ms'))} | {f(r.get('added_p99_ms'))} | {r['throughput_rps']:.0f} | {r['errors']} | {f(r['cpu_s_per_10k'])} |")
    lines += ["", "| setup | start-up to first 200 (ms) | idle RSS (MiB) | peak RSS (MiB) |", "|---|---|---|---|"]
    for s in results["setups"]:
        lines.append(f"| {s['setup']} | {f(s['startup_ms'])} | {f(s['idle_rss_mib'])} | {f(s['peak_rss_mib'])} |")
    if results["streaming"]:
        lines += ["", "Streaming (50 sequential streams of 200 chunks; the mock sends a chunk every 2 ms):", "",
                  "| setup | TTFB p50 | TTFB p99 | chunk gap p50 | chunk gap p99 |", "|---|---|---|---|---|"]
        for s in results["streaming"]:
            lines.append(f"| {s['setup']} | {s['ttfb_p50_ms']:.2f} | {s['ttfb_p99_ms']:.2f} | {s['gap_p50_ms']:.2f} | {s['gap_p99_ms']:.2f} |")
    if results.get("concurrent_streams"):
        lines += ["", "500 concurrent streams of 200 events each (all opened at once, each read to its end):", "",
                  "| setup | complete streams | events | wall s | CPU us per event | RSS before (MiB) | RSS peak (MiB) |",
                  "|---|---|---|---|---|---|---|"]
        for s in results["concurrent_streams"]:
            lines.append(f"| {s['setup']} | {s['complete_streams']}/{s['streams']} | {s['events']} | {s['wall_s']:.2f} | "
                         f"{s['cpu_us_per_event']:.2f} | {s['rss_before_mib']:.1f} | {s['rss_peak_mib']:.1f} |")
    if "soak" in results:
        r = results["soak"]["rss_mib"]
        lines += ["", f"Soak: {results['soak']['seconds']} s at 2,000/s, RSS {r[0]:.1f} -> {r[-1]:.1f} MiB (max {max(r):.1f})."]
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rates", type=int, nargs="*", default=[1000, 2000, 4000])
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--peer-bin", action="append", help="a TensorZero Gateway binary to measure too")
    ap.add_argument("--skip-peer", action="store_true")
    ap.add_argument("--skip-secured", action="store_true", help="skip the auth + rate-limit setups (no Postgres/Redis)")
    ap.add_argument("--soak", type=int, default=0, help="also run a soak of this many seconds and watch RSS")
    ap.add_argument("--only", choices=["secured", "streaming", "store"], help="run only the floor and these setups (a quick A/B; "
                    "writes results/only-NAME.{md,json} instead of latest)")
    args = ap.parse_args()
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": f"{platform.machine()} {platform.platform()}", "cpus": os.cpu_count(),
            "connections": args.connections, "seconds": args.seconds}
    t0 = time.monotonic()
    results = Bench(args).run()
    meta["wall_s"] = round(time.monotonic() - t0)
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    stem = f"only-{args.only}" if args.only else "latest"
    (out / f"{stem}.json").write_text(json.dumps({"meta": meta, **results}, indent=2))
    (out / f"{stem}.md").write_text(markdown(results, meta))
    print(f"\nwrote {out / stem}.md and {stem}.json in {meta['wall_s']} s")


if __name__ == "__main__":
    main()
