"""Coding agents' APIs with their official SDKs: the OpenAI Responses API
(`client.responses`), Anthropic Messages (`client.messages`, streaming, tools, thinking,
`count_tokens`) and both model lists, through one gateway and through an edge relaying to a
relay, against the mock provider. Agents send bare model names; the configuration maps them
onto the organisation's models, as the README's "Coding agents" section shows."""

import json

import anthropic
import openai
import pytest

from conftest import doc_block, start_gateway

# The models as the organisation defines them, under the names the agents send.
MODELS = """
[models."gpt-5-codex"]
routing = ["mock"]
[models."gpt-5-codex".providers.mock]
type = "openai"
api_base = "http://MOCK/v1/"
model_name = "mock-codex"
api_key_location = "PROVIDER_KEY"

[models.gpt-tool]
routing = ["mock"]
[models.gpt-tool.providers.mock]
type = "openai"
api_base = "http://MOCK/v1/"
model_name = "tool"
api_key_location = "PROVIDER_KEY"

[models.gpt-json]
routing = ["mock"]
[models.gpt-json.providers.mock]
type = "openai"
api_base = "http://MOCK/v1/"
model_name = "json"
api_key_location = "PROVIDER_KEY"

[models."claude-sonnet-4-6"]
routing = ["anthropic"]
[models."claude-sonnet-4-6".providers.anthropic]
type = "anthropic"
api_base = "http://MOCK/v1/messages"
model_name = "claude-think"
api_key_location = "PROVIDER_KEY"

[models.claude-tool]
routing = ["anthropic"]
[models.claude-tool.providers.anthropic]
type = "anthropic"
api_base = "http://MOCK/v1/messages"
model_name = "claude-tool"
api_key_location = "PROVIDER_KEY"

[functions.reviewer]
type = "chat"
[functions.reviewer.variants.v]
type = "chat_completion"
model = "gpt-5-codex"
"""


@pytest.fixture(scope="module", params=["direct", "relayed"])
def gateway(request, mock_provider, tmp_path_factory):
    d = tmp_path_factory.mktemp(f"agents-{request.param}")
    (d / "key").write_text("sk-provider-key")
    models = MODELS.replace("MOCK", mock_provider)
    relay_cfg = d / "relay.toml"
    relay_cfg.write_text(models.replace("PROVIDER_KEY", f"path::{d / 'key'}"))
    (d / "relay").mkdir()
    relay, relay_addr = start_gateway(relay_cfg, d / "relay")
    processes = [relay]
    url = f"http://{relay_addr}"
    if request.param == "relayed":
        # The edge names the same models and holds no provider key: every call goes to the relay.
        edge_cfg = d / "edge.toml"
        edge_cfg.write_text(
            f'[gateway.relay]\ngateway_url = "{url}"\n'
            + models.replace("PROVIDER_KEY", "env::EDGE_HAS_NO_SUCH_KEY")
        )
        (d / "edge").mkdir()
        edge, edge_addr = start_gateway(edge_cfg, d / "edge")
        processes.append(edge)
        url = f"http://{edge_addr}"
    yield url
    for p in processes:
        p.stop()


def oai(url):
    return openai.OpenAI(base_url=url + "/openai/v1", api_key="unused", max_retries=0)


def claude(url):
    return anthropic.Anthropic(base_url=url + "/anthropic", api_key="unused", max_retries=0)


def test_responses_create_and_stream(gateway):
    client = oai(gateway)
    r = client.responses.create(model="gpt-5-codex", input="hello", instructions="Be brief.")
    assert r.output_text == "mock reply to: hello"
    assert r.status == "completed"
    assert r.usage.input_tokens > 0 and r.usage.output_tokens == 4
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens

    # A function by its bare name, and the stream helper that accumulates the typed events.
    with client.responses.stream(model="reviewer", input=[{"role": "user", "content": "review"}]) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert final.output_text == "mock reply to: review"
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert "response.output_text.delta" in kinds and "response.output_item.done" in kinds


def test_responses_tool_round_trip_and_json_schema(gateway):
    client = oai(gateway)
    tools = [{
        "type": "function", "name": "get_weather", "description": "Weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }]
    r = client.responses.create(model="gpt-tool", input="weather in Paris?", tools=tools)
    call = next(item for item in r.output if item.type == "function_call")
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"}
    follow_up = [
        {"role": "user", "content": "weather in Paris?"},
        {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
    ]
    r = client.responses.create(model="gpt-5-codex", input=follow_up, tools=tools)
    assert r.output_text.startswith("mock reply to")

    # Streamed, the call's arguments arrive as deltas and the final response holds the call.
    with client.responses.stream(model="gpt-tool", input="weather?", tools=tools) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert "response.function_call_arguments.delta" in kinds
    assert "response.function_call_arguments.done" in kinds
    assert json.loads(next(i for i in final.output if i.type == "function_call").arguments) == {"city": "Paris"}

    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"], "additionalProperties": False}
    r = client.responses.create(
        model="gpt-json", input="six times seven",
        text={"format": {"type": "json_schema", "name": "answer", "schema": schema, "strict": True}},
    )
    assert json.loads(r.output_text) == {"answer": 42}


def test_responses_errors_come_in_openai_shape(gateway):
    client = oai(gateway)
    with pytest.raises(openai.NotFoundError) as e:
        client.responses.create(model="gpt-99", input="hi")
    assert "[models" in str(e.value)
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(
            model="gpt-5-codex",
            input=[{"type": "function_call_output", "call_id": "call_missing", "output": "x"}],
        )
    assert "call_missing" in str(e.value)
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model="gpt-5-codex", input="hi", previous_response_id="resp_1")
    assert "previous_response_id" in str(e.value)


def test_anthropic_messages_create_stream_and_thinking(gateway):
    client = claude(gateway)
    m = client.messages.create(
        model="claude-sonnet-4-6", max_tokens=1024, system="Be brief.",
        thinking={"type": "enabled", "budget_tokens": 512},
        messages=[{"role": "user", "content": "hello"}],
    )
    kinds = [b.type for b in m.content]
    assert kinds[0] == "thinking" and m.content[0].signature == "sig-mock"
    assert "text" in kinds and m.stop_reason == "end_turn"
    assert m.usage.output_tokens > 0

    with client.messages.stream(
        model="claude-sonnet-4-6", max_tokens=1024, thinking={"type": "enabled", "budget_tokens": 512},
        messages=[{"role": "user", "content": "stream please"}],
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text and final.content[0].type == "thinking"
    assert final.content[0].thinking == "let me think"
    assert final.stop_reason == "end_turn"

    # The thinking block goes back with the next turn, as Claude Code sends it.
    m2 = client.messages.create(
        model="claude-sonnet-4-6", max_tokens=256,
        messages=[
            {"role": "user", "content": "hello"},
            {"role": "assistant", "content": [b.model_dump() for b in m.content]},
            {"role": "user", "content": "and then?"},
        ],
    )
    assert m2.content[-1].type == "text"


def test_anthropic_tool_use_round_trip(gateway):
    client = claude(gateway)
    tools = [{
        "name": "get_weather", "description": "Weather in a city.",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }]
    m = client.messages.create(
        model="claude-tool", max_tokens=256, tools=tools, messages=[{"role": "user", "content": "weather?"}],
    )
    use = next(b for b in m.content if b.type == "tool_use")
    assert use.name == "get_weather" and isinstance(use.input, dict)
    assert m.stop_reason == "tool_use"
    m2 = client.messages.create(
        model="claude-sonnet-4-6", max_tokens=256, tools=tools,
        messages=[
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": [use.model_dump()]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}]},
        ],
    )
    assert m2.content[-1].type == "text"

    with client.messages.stream(
        model="claude-tool", max_tokens=256, tools=tools, messages=[{"role": "user", "content": "weather?"}],
    ) as stream:
        final = stream.get_final_message()
    streamed = next(b for b in final.content if b.type == "tool_use")
    assert streamed.name == "get_weather" and streamed.input == use.input


def test_anthropic_count_tokens_models_and_errors(gateway):
    client = claude(gateway)
    counted = client.messages.count_tokens(
        model="claude-sonnet-4-6", messages=[{"role": "user", "content": "count these words please"}],
    )
    assert counted.input_tokens >= 5
    ids = [m.id for m in client.models.list()]
    assert {"claude-sonnet-4-6", "gpt-5-codex", "reviewer", "openai::"} <= set(ids)
    assert {m.id for m in oai(gateway).models.list()} == set(ids)

    with pytest.raises(anthropic.NotFoundError) as e:
        client.messages.create(model="claude-nope", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert e.value.body["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.BadRequestError) as e:
        client.messages.create(
            model="claude-sonnet-4-6", max_tokens=10,
            messages=[{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_x", "content": "x"}]}],
        )
    assert e.value.body["error"]["type"] == "invalid_request_error"
    assert "toolu_x" in e.value.body["error"]["message"]


def test_the_readme_agents_config_loads(tmp_path):
    import os
    import subprocess

    from conftest import TARGET

    config = tmp_path / "tensorzero.toml"
    config.write_text(doc_block("agents-config"))
    env = {
        "PATH": os.environ["PATH"], "OPENAI_API_KEY": "k", "ANTHROPIC_API_KEY": "k", "AZURE_API_KEY": "k",
        "AZURE_OPENAI_ENDPOINT": "https://acme.openai.azure.com", "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "k",
    }
    out = subprocess.run(
        [str(TARGET / "switchyard"), "--config-file", str(config), "--validate-config"],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "configuration is valid" in out.stdout


@pytest.mark.parametrize("marker", ["agents-openai", "agents-anthropic"])
def test_the_readme_agent_snippets_run(gateway, marker):
    import contextlib
    import io

    code = doc_block(marker).replace("http://localhost:3000", gateway)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "README.md", "exec"), {})
    lines = printed.getvalue().strip().splitlines()
    assert lines and all(line.startswith("mock reply to") for line in lines), printed.getvalue()
