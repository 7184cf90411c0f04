"""The runnable examples, run as a user would run them."""

import os
import socket
import subprocess

from conftest import ROOT, doc_block


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_relay_guide_runs_end_to_end():
    edge, relay, mock = free_ports(3)
    env = {**os.environ, "EDGE_PORT": str(edge), "RELAY_PORT": str(relay), "MOCK_PORT": str(mock)}
    out = subprocess.run(
        [str(ROOT / "examples/relay/run.sh")], env=env, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    # Part 1: the guide's request through the relay, with the relay's key at the provider.
    assert text.count("provider received: model gpt-5-mini, the expected key") == 3, text
    # Part 2: refused without a key, served with one.
    assert "HTTP 401" in text and "Authorization header is required" in text
    # Part 3: the missing dynamic credential is named.
    assert "Dynamic api key `openai_api_key` is missing" in text
    assert "All three parts of the relay guide work" in text
    # The edge key is shown only up to its public id.
    for line in text.splitlines():
        if line.startswith("created an API key"):
            assert len(line.split("sk-t0-")[1].split("...")[0]) == 12


def test_the_functions_example_serves_the_readme_request(mock_provider, tmp_path):
    """examples/functions as the README runs it (its mock-provider.toml pointed at this run's
    mock), answering the README's curl block."""
    import json
    import shutil

    from conftest import start_gateway

    example = tmp_path / "functions"
    shutil.copytree(ROOT / "examples/functions", example)
    mock_cfg = example / "mock-provider.toml"
    mock_cfg.write_text(mock_cfg.read_text().replace("127.0.0.1:3030", mock_provider))
    (tmp_path / "logs").mkdir()
    gw, addr = start_gateway(f"{example}/*.toml", tmp_path / "logs")
    try:
        command = doc_block("functions-curl").replace("http://localhost:3000", f"http://{addr}")
        out = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=30, check=True).stdout
        answer = json.loads(out)
        assert answer["content"][0]["text"] == "mock reply to: Write a haiku about autumn.", answer
        assert answer["variant_name"] in ("gpt", "gpt_careful")
    finally:
        gw.stop()


def test_the_functions_example_is_a_valid_tensorzero_config():
    """The example's main file is meant for either gateway: the TensorZero Gateway loads it too."""
    from tensorzero import TensorZeroGateway

    with TensorZeroGateway.build_embedded(config_file=str(ROOT / "examples/functions/tensorzero.toml")):
        pass
