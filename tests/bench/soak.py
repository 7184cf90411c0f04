"""A soak: one gateway at a fixed rate for a long time, its RSS sampled, to show whether memory
stays flat once warm (`bench.py --soak` does the same after the whole matrix; this runs it alone).

    .venv/bin/python tests/bench/soak.py                      # 600 s at 2,000/s after a 60 s warm-up
    .venv/bin/python tests/bench/soak.py --seconds 120 --rate 4000

Writes tests/bench/results/soak.json and prints the samples and the spread once warm.
"""

import argparse
import json
import pathlib
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import configs  # noqa: E402
from bench import PROMPT, RELEASE, Proc, find_oha, free_port, oha, summarize, wait_ok  # noqa: E402

CHAT = "/openai/v1/chat/completions"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=600)
    ap.add_argument("--warmup", type=int, default=60)
    ap.add_argument("--rate", type=int, default=2000)
    ap.add_argument("--connections", type=int, default=64)
    a = ap.parse_args()
    work = pathlib.Path(tempfile.mkdtemp(prefix="switchyard-soak-"))
    for name, text in configs.TEMPLATE_FILES.items():
        (work / name).write_text(text)
    mock_port, port = free_port(), free_port()
    mock = Proc("mock", [str(RELEASE / "mock-provider"), "--bind", f"127.0.0.1:{mock_port}"], work)
    cfg = work / "gateway.toml"
    cfg.write_text(configs.GATEWAY.replace("MOCK", f"127.0.0.1:{mock_port}").replace("TEMPLATES", str(work)))
    gw = Proc("switchyard", [str(RELEASE / "switchyard"), "--config-file", str(cfg), "--bind-address", f"127.0.0.1:{port}"],
              work, {"RUST_LOG": "warn"})
    body = {"model": "tensorzero::function_name::function1", "messages": PROMPT}
    binary = find_oha()
    try:
        time.sleep(0.3)
        wait_ok(gw, port, CHAT, body)
        oha(binary, port, CHAT, body, None, a.rate, a.warmup, a.connections)
        warm = gw.rss_mib()
        samples = []
        end = time.monotonic() + a.seconds
        while time.monotonic() < end:
            raw = oha(binary, port, CHAT, body, None, a.rate, 10, a.connections)
            samples.append(gw.rss_mib())
            print(f"  {len(samples) * 10:>4} s  RSS {samples[-1]:.1f} MiB  errors {summarize(raw)['errors']}", flush=True)
    finally:
        gw.stop()
        mock.stop()
    spread = (max(samples) - min(samples)) / min(samples)
    print(f"warm RSS {warm:.1f} MiB; over {a.seconds} s at {a.rate}/s: {min(samples):.1f} to {max(samples):.1f} MiB "
          f"(spread {spread:.1%}), last {samples[-1]:.1f} MiB")
    out = HERE / "results" / "soak.json"
    out.write_text(json.dumps({"rate": a.rate, "seconds": a.seconds, "warm_rss_mib": warm, "rss_mib": samples,
                               "spread": spread}, indent=2) + "\n")


if __name__ == "__main__":
    main()
