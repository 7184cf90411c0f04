"""The seed's relay guide, with real clients: the OpenAI SDK and the TensorZero client call an
edge that relays to a relay; and the TensorZero Gateway itself (embedded in its Python client)
as the edge relaying to our relay."""

import json
import urllib.request

import openai
import pytest
from tensorzero import TensorZeroGateway

from conftest import start_gateway

RELAY_CONFIG = """
[models.mock]
routing = ["openai"]
[models.mock.providers.openai]
type = "openai"
api_base = "http://MOCK/v1/"
model_name = "relayed-model"
api_key_location = "path::KEYFILE"

[models.customer]
routing = ["openai"]
[models.customer.providers.openai]
type = "openai"
api_base = "http://MOCK/v1/"
model_name = "customer-model"
api_key_location = "dynamic::customer_key"
"""

# The edge names the same models, with providers it could not call: it has no keys.
EDGE_CONFIG = """
[gateway.relay]
gateway_url = "RELAY"

[models.mock]
routing = ["openai"]
[models.mock.providers.openai]
type = "openai"
model_name = "never-called"
api_key_location = "env::EDGE_HAS_NO_SUCH_KEY"

[models.customer]
routing = ["openai"]
[models.customer.providers.openai]
type = "openai"
model_name = "never-called"
api_key_location = "env::EDGE_HAS_NO_SUCH_KEY"

[functions.haiku]
type = "chat"
[functions.haiku.variants.v]
type = "chat_completion"
model = "mock"
"""

RELAY_KEY = "sk-relay-provider-key"


def mock_requests(mock):
    return json.load(urllib.request.urlopen(f"http://{mock}/mock/requests"))


@pytest.fixture(scope="module")
def tiers(mock_provider, tmp_path_factory):
    d = tmp_path_factory.mktemp("relay")
    (d / "key").write_text(RELAY_KEY)
    relay_cfg = d / "relay.toml"
    relay_cfg.write_text(RELAY_CONFIG.replace("MOCK", mock_provider).replace("KEYFILE", str(d / "key")))
    (d / "relay").mkdir()
    relay, relay_addr = start_gateway(relay_cfg, d / "relay")
    (d / "edge").mkdir()
    edge_cfg = d / "edge.toml"
    edge_cfg.write_text(EDGE_CONFIG.replace("RELAY", f"http://{relay_addr}"))
    edge, edge_addr = start_gateway(edge_cfg, d / "edge")
    yield {"edge": f"http://{edge_addr}", "relay": f"http://{relay_addr}", "dir": d}
    edge.stop()
    relay.stop()


def last_call_for(mock, model):
    calls = [r for r in mock_requests(mock) if r["body"].get("model") == model]
    assert calls, f"the provider never saw {model}"
    return calls[-1]


def test_openai_sdk_through_edge_and_relay(tiers, mock_provider):
    client = openai.OpenAI(base_url=tiers["edge"] + "/openai/v1", api_key="not-used", max_retries=0)
    r = client.chat.completions.create(model="tensorzero::function_name::haiku", messages=[{"role": "user", "content": "one"}])
    assert r.choices[0].message.content == "mock reply to: one"
    assert last_call_for(mock_provider, "relayed-model")["headers"]["authorization"] == f"Bearer {RELAY_KEY}"
    stream = client.chat.completions.create(
        model="tensorzero::model_name::mock", messages=[{"role": "user", "content": "two"}], stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "mock reply to: two"
    assert chunks[-1].usage.completion_tokens == 4


def test_tensorzero_client_through_edge_and_relay(tiers, mock_provider):
    with TensorZeroGateway.build_http(gateway_url=tiers["edge"]) as client:
        r = client.inference(model_name="mock", input={"messages": [{"role": "user", "content": "tz"}]})
        assert r.content[0].text == "mock reply to: tz"
        assert r.usage.output_tokens == 4
        chunks = list(client.inference(function_name="haiku", input={"messages": [{"role": "user", "content": "tz stream"}]}, stream=True))
        assert "".join(b.text for c in chunks for b in c.content) == "mock reply to: tz stream"
        assert chunks[-1].usage.output_tokens == 5
        # Dynamic credentials sent to the edge reach the provider through the relay.
        r = client.inference(
            model_name="customer", input={"messages": [{"role": "user", "content": "mine"}]},
            credentials={"customer_key": "sk-customer-42"},
        )
        assert r.content[0].text == "mock reply to: mine"
    assert last_call_for(mock_provider, "customer-model")["headers"]["authorization"] == "Bearer sk-customer-42"


def test_the_tensorzero_gateway_as_edge_relays_to_our_relay(tiers, mock_provider, tmp_path):
    edge_cfg = tmp_path / "tz-edge.toml"
    edge_cfg.write_text(EDGE_CONFIG.replace("RELAY", tiers["relay"]))
    with TensorZeroGateway.build_embedded(config_file=str(edge_cfg)) as tz_edge:
        r = tz_edge.inference(model_name="mock", input={"messages": [{"role": "user", "content": "from tz"}]})
        assert r.content[0].text == "mock reply to: from tz"
        chunks = list(tz_edge.inference(model_name="mock", input={"messages": [{"role": "user", "content": "tz s"}]}, stream=True))
        assert "".join(b.text for c in chunks for b in c.content) == "mock reply to: tz s"
        assert chunks[-1].finish_reason.value == "stop"
        r = tz_edge.inference(
            function_name="haiku", input={"messages": [{"role": "user", "content": "dyn"}]},
        )
        assert r.content[0].text == "mock reply to: dyn"
        r = tz_edge.inference(
            model_name="customer", input={"messages": [{"role": "user", "content": "dyn"}]},
            credentials={"customer_key": "sk-from-tz-edge"},
        )
    assert last_call_for(mock_provider, "relayed-model")["headers"]["authorization"] == f"Bearer {RELAY_KEY}"
    assert last_call_for(mock_provider, "customer-model")["headers"]["authorization"] == "Bearer sk-from-tz-edge"


def keys(value, prefix=""):
    """Every key path in a JSON object (lists are looked into, their indexes are not part of the path)."""
    out = set()
    if isinstance(value, dict):
        for k, v in value.items():
            out.add(prefix + k)
            out |= keys(v, prefix + k + ".")
    elif isinstance(value, list):
        for v in value:
            out |= keys(v, prefix)
    return out


def test_our_relay_requests_use_only_what_the_tensorzero_edge_sends(mock_provider, tmp_path):
    """No TensorZero central gateway can be run here (the embeddable one serves only the OpenAI
    routes). Its central accepts exactly what its own edge sends, so both edges relay the same
    inference to the mock, which records the bodies, and ours must use no key theirs does not."""
    relay_url = f"http://{mock_provider}/relay-probe"
    cfg = tmp_path / "edge.toml"
    cfg.write_text(EDGE_CONFIG.replace("RELAY", relay_url))
    request = {
        "model_name": "mock",
        "input": {"system": "s", "messages": [{"role": "user", "content": "probe"}]},
        "params": {"chat_completion": {"temperature": 0.1, "max_tokens": 5}},
        "tags": {"team": "x"},
        "credentials": {"k": "v"},
        "additional_tools": [{"name": "t", "description": "d", "parameters": {"type": "object"}, "strict": False}],
        "tool_choice": "auto",
    }
    with TensorZeroGateway.build_embedded(config_file=str(cfg)) as tz_edge:
        with pytest.raises(Exception):
            tz_edge.inference(**request)
    (tmp_path / "ours").mkdir()
    ours, addr = start_gateway(cfg, tmp_path / "ours")
    try:
        req = urllib.request.Request(f"http://{addr}/inference", data=json.dumps(request).encode(), headers={"content-type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=30)
        assert e.value.code == 404, "the mock's 404 comes back as the relay's status"
    finally:
        ours.stop()
    probes = [r for r in mock_requests(mock_provider) if r["path"] == "/relay-probe/inference"]
    assert len(probes) == 2, probes
    theirs, mine = probes[0]["body"], probes[1]["body"]
    assert keys(mine) - keys(theirs) == set(), f"keys the TensorZero edge never sends: {keys(mine) - keys(theirs)}"
    for field in ("function_name", "model_name", "episode_id", "stream", "tags", "credentials", "internal"):
        assert mine[field] == theirs[field], field
    assert mine["params"]["chat_completion"]["json_mode"] == theirs["params"]["chat_completion"]["json_mode"]
    assert mine["input"] == theirs["input"]
    assert mine["additional_tools"] == theirs["additional_tools"]
