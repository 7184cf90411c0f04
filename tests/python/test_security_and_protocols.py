"""Secrets never reach a log; the gateway speaks HTTP/2 as well as HTTP/1.1."""

import json
import subprocess
import urllib.request

from conftest import start_gateway

FILE_KEY = "sk-file-SECRET-7f3a"
DYNAMIC_KEY = "sk-dynamic-SECRET-91bc"
CLIENT_KEY = "sk-client-SECRET-22de"

CONFIG = """
[models.filekey]
routing = ["p"]
[models.filekey.providers.p]
type = "openai"
api_base = "http://MOCK/v1/"
model_name = "mock"
api_key_location = "path::KEYFILE"

[models.dynkey]
routing = ["p"]
[models.dynkey.providers.p]
type = "openai"
api_base = "http://MOCK/v1/"
model_name = "error-401"
api_key_location = "dynamic::customer_key"
"""


def post(url, body, headers=None):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"content-type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_no_secret_reaches_the_log_even_at_trace_level(mock_provider, tmp_path):
    keyfile = tmp_path / "key"
    keyfile.write_text(FILE_KEY + "\n")
    config = tmp_path / "tensorzero.toml"
    config.write_text(CONFIG.replace("MOCK", mock_provider).replace("KEYFILE", str(keyfile)))
    proc, addr = start_gateway(config, tmp_path, extra_env={"RUST_LOG": "trace"})
    try:
        auth = {"authorization": f"Bearer {CLIENT_KEY}"}
        msg = {"messages": [{"role": "user", "content": "hi"}]}
        status, _ = post(f"http://{addr}/inference", {"model_name": "filekey", "input": msg}, auth)
        assert status == 200
        status, body = post(
            f"http://{addr}/inference",
            {"model_name": "dynkey", "input": msg, "credentials": {"customer_key": DYNAMIC_KEY}, "stream": True},
            auth,
        )
        assert status == 502 and "HTTP 401" in body, body
        assert DYNAMIC_KEY not in body
        status, body = post(
            f"http://{addr}/openai/v1/chat/completions",
            {"model": "tensorzero::model_name::dynkey", "messages": msg["messages"], "tensorzero::credentials": {"customer_key": DYNAMIC_KEY}},
            auth,
        )
        assert status == 502 and DYNAMIC_KEY not in body
    finally:
        proc.stop()
    log = proc.output()
    assert "switchyard::request" in log, "the request log lines are there"
    for secret in (FILE_KEY, DYNAMIC_KEY, CLIENT_KEY):
        assert secret not in log, f"{secret} leaked into the log"

    received = json.load(urllib.request.urlopen(f"http://{mock_provider}/mock/requests"))
    auths = [r["headers"].get("authorization") for r in received if r["body"].get("model") in ("mock", "error-401")]
    assert f"Bearer {FILE_KEY}" in auths and f"Bearer {DYNAMIC_KEY}" in auths
    assert all(CLIENT_KEY not in json.dumps(r) for r in received), "the client's key never reaches a provider"


def test_http2_and_http1(quickstart_gateway):
    for flag, version in (("--http2-prior-knowledge", "2"), ("--http1.1", "1.1")):
        out = subprocess.run(
            ["curl", "-s", flag, "-o", "/dev/null", "-w", "%{http_version} %{http_code}", quickstart_gateway["url"] + "/status"],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout
        assert out == f"{version} 200", out
