"""Functions as the TensorZero client and the OpenAI SDK use them: templates filled from schema-
checked arguments, json functions, a tool call and its result, and embeddings, against one
gateway whose config directory holds the template and schema files."""

import json
import urllib.request

import openai
import pytest
from tensorzero import TensorZeroError, TensorZeroGateway, ToolResult

from conftest import start_gateway

CONFIG = """
[models.chat]
routing = ["mock"]
[models.chat.providers.mock]
type = "openai"
api_base = "http://MOCK/v1/"
model_name = "chat-model"
api_key_location = "none"

[models.json]
routing = ["mock"]
[models.json.providers.mock]
type = "openai"
api_base = "http://MOCK/v1/"
model_name = "json"
api_key_location = "none"

[models.tool]
routing = ["mock"]
[models.tool.providers.mock]
type = "openai"
api_base = "http://MOCK/v1/"
model_name = "tool"
api_key_location = "none"

[functions.write_haiku]
type = "chat"
system_schema = "schemas/system.json"
user_schema = "schemas/user.json"
[functions.write_haiku.variants.v]
type = "chat_completion"
model = "chat"
system_template = "templates/system.minijinja"
user_template = "templates/user.minijinja"
temperature = 0.3
max_tokens = 50
seed = 11
stop_sequences = ["END"]

[functions.wrapped]
type = "chat"
[functions.wrapped.variants.v]
type = "chat_completion"
model = "chat"
system_template = "templates/system_text.minijinja"
user_template = "templates/wrap.minijinja"

[functions.locate]
type = "json"
output_schema = "schemas/weather.json"
[functions.locate.variants.v]
type = "chat_completion"
model = "tool"
json_mode = "implicit_tool"

[functions.extract_answer]
type = "json"
output_schema = "schemas/answer.json"
[functions.extract_answer.variants.v]
type = "chat_completion"
model = "json"
json_mode = "strict"

[tools.get_weather]
description = "The weather in a city."
parameters = "schemas/weather.json"

[functions.assistant]
type = "chat"
tools = ["get_weather"]
[functions.assistant.variants.v]
type = "chat_completion"
model = "tool"

[embedding_models.small]
routing = ["mock"]
[embedding_models.small.providers.mock]
type = "openai"
api_base = "http://MOCK/v1/"
model_name = "text-embedding-small"
api_key_location = "none"
"""

FILES = {
    "schemas/system.json": {"type": "object", "properties": {"poet": {"type": "string"}}, "required": ["poet"]},
    "schemas/user.json": {"type": "object", "properties": {"topic": {"type": "string"}}, "required": ["topic"]},
    "schemas/answer.json": {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]},
    "schemas/weather.json": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    "templates/system.minijinja": "You write haiku in the style of {{ poet }}.",
    "templates/user.minijinja": "Write a haiku about {{ topic }}.",
    "templates/system_text.minijinja": "Rules: {{ system_text }}",
    "templates/wrap.minijinja": "<<{{ user_text }}>>",
}


def mock_requests(mock):
    return json.load(urllib.request.urlopen(f"http://{mock}/mock/requests"))


@pytest.fixture(scope="module")
def gateway(mock_provider, tmp_path_factory):
    d = tmp_path_factory.mktemp("functions")
    for name, content in FILES.items():
        path = d / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content if isinstance(content, str) else json.dumps(content))
    cfg = d / "tensorzero.toml"
    cfg.write_text(CONFIG.replace("MOCK", mock_provider))
    proc, addr = start_gateway(cfg, d)
    yield f"http://{addr}"
    proc.stop()


def last_body(mock, model):
    calls = [r for r in mock_requests(mock) if r["body"].get("model") == model]
    assert calls, f"the provider never saw {model}"
    return calls[-1]["body"]


def test_the_tensorzero_client_fills_templates(gateway, mock_provider):
    with TensorZeroGateway.build_http(gateway_url=gateway) as client:
        r = client.inference(
            function_name="write_haiku",
            input={
                "system": {"poet": "Basho"},
                "messages": [{"role": "user", "content": [{"type": "template", "name": "user", "arguments": {"topic": "autumn"}}]}],
            },
        )
        assert r.variant_name == "v"
        assert r.content[0].text == "mock reply to: Write a haiku about autumn."
        body = last_body(mock_provider, "chat-model")
        assert body["messages"][0] == {"role": "system", "content": "You write haiku in the style of Basho."}
        # Arguments that break the schema: a 400 that names the schema and the field.
        with pytest.raises(TensorZeroError) as e:
            client.inference(
                function_name="write_haiku",
                input={
                    "system": {"poet": "Basho"},
                    "messages": [{"role": "user", "content": [{"type": "template", "name": "user", "arguments": {"subject": "x"}}]}],
                },
            )
        assert e.value.status_code == 400
        assert "user_schema" in e.value.text and "topic" in e.value.text


def test_the_tensorzero_client_gets_parsed_json(gateway):
    with TensorZeroGateway.build_http(gateway_url=gateway) as client:
        r = client.inference(function_name="extract_answer", input={"messages": [{"role": "user", "content": "six times seven?"}]})
        assert r.output.raw == '{"answer":42}'
        assert r.output.parsed == {"answer": 42}
        chunks = list(client.inference(function_name="extract_answer", input={"messages": [{"role": "user", "content": "again"}]}, stream=True))
        assert "".join(c.raw for c in chunks) == '{"answer":42}'


def test_a_tool_call_and_its_result_round_trip(gateway, mock_provider):
    with TensorZeroGateway.build_http(gateway_url=gateway) as client:
        question = {"role": "user", "content": "Weather in Paris?"}
        r = client.inference(function_name="assistant", input={"messages": [question]})
        call = r.content[0]
        assert call.type == "tool_call"
        assert call.name == "get_weather"
        assert call.arguments == {"city": "Paris"}
        r2 = client.inference(
            function_name="assistant",
            input={"messages": [
                question,
                {"role": "assistant", "content": r.content},
                {"role": "user", "content": [ToolResult(name="get_weather", result="sunny", id=call.id)]},
            ]},
            tool_choice="none",
        )
        assert r2.content
        messages = last_body(mock_provider, "tool")["messages"]
        assert messages[1]["tool_calls"][0]["id"] == call.id
        assert messages[2] == {"role": "tool", "tool_call_id": call.id, "content": "sunny"}


def test_the_openai_sdk_fills_templates_and_embeds(gateway, mock_provider):
    client = openai.OpenAI(base_url=gateway + "/openai/v1", api_key="not-used", max_retries=0)
    r = client.chat.completions.create(
        model="tensorzero::function_name::write_haiku",
        messages=[
            {"role": "system", "content": [{"type": "tensorzero::template", "name": "system", "arguments": {"poet": "Issa"}}]},
            {"role": "user", "content": [{"type": "tensorzero::template", "name": "user", "arguments": {"topic": "frogs"}}]},
        ],
    )
    assert r.choices[0].message.content == "mock reply to: Write a haiku about frogs."
    assert r.model == "tensorzero::function_name::write_haiku::variant_name::v"

    e = client.embeddings.create(model="tensorzero::embedding_model_name::small", input=["frog", "pond"])
    assert len(e.data) == 2 and len(e.data[0].embedding) == 4
    assert e.data[1].index == 1
    assert e.usage.prompt_tokens == 2
    assert last_body(mock_provider, "text-embedding-small")["input"] == ["frog", "pond"]
    # The SDK asks for base64 by default unless told otherwise; both decode to the same vector.
    f = client.embeddings.create(model="tensorzero::embedding_model_name::small", input="frog", encoding_format="float")
    assert f.data[0].embedding == pytest.approx(e.data[0].embedding)


CASES = [
    ("write_haiku", {"system": {"poet": "Basho"}, "messages": [{"role": "user", "content": [{"type": "template", "name": "user", "arguments": {"topic": "autumn"}}]}]}, {}),
    ("write_haiku", {"system": {"poet": "Issa"}, "messages": [
        {"role": "user", "content": [{"type": "template", "name": "user", "arguments": {"topic": "frogs"}}]},
        {"role": "assistant", "content": "Old pond"},
        {"role": "user", "content": [{"type": "raw_text", "value": "again, unwrapped"}]},
    ]}, {}),
    ("wrapped", {"system": "be kind", "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}, {"role": "user", "content": "bye"}]}, {}),
    ("extract_answer", {"messages": [{"role": "user", "content": "six times seven?"}]}, {}),
    ("locate", {"messages": [{"role": "user", "content": "where?"}]}, {}),
    ("assistant", {"messages": [{"role": "user", "content": "Weather in Paris?"}]}, {}),
    ("assistant", {"messages": [{"role": "user", "content": "Weather in Paris?"}]}, {"tool_choice": "required", "parallel_tool_calls": True}),
]


@pytest.mark.parametrize("function,input,extra", CASES)
def test_the_provider_sees_what_the_tensorzero_gateway_would_send(gateway, mock_provider, tmp_path, function, input, extra):
    """The same config and request through the TensorZero Gateway (embedded in its client) and
    through switchyard: the provider must receive the same prompt, tools and output format."""
    d = tmp_path / "tz"
    for name, content in FILES.items():
        path = d / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content if isinstance(content, str) else json.dumps(content))
    cfg = d / "tensorzero.toml"
    cfg.write_text(CONFIG.replace("MOCK", mock_provider))

    def provider_body(run):
        before = len(mock_requests(mock_provider))
        run()
        after = mock_requests(mock_provider)
        assert len(after) == before + 1, "one provider call"
        return after[-1]["body"]

    with TensorZeroGateway.build_embedded(config_file=str(cfg)) as tz:
        theirs = provider_body(lambda: tz.inference(function_name=function, input=input, **extra))
    with TensorZeroGateway.build_http(gateway_url=gateway) as ours_client:
        mine = provider_body(lambda: ours_client.inference(function_name=function, input=input, **extra))
    # Where `strict` goes differs: OpenAI documents it inside `function`, which is where
    # switchyard puts it; the TensorZero Gateway sends it beside `function`. Compare the meaning.
    # The description of the `respond` tool of `implicit_tool` is each gateway's own words.
    def strictness(tools):
        out = []
        for t in tools or []:
            t = json.loads(json.dumps(t))
            strict = t.pop("strict", False) or t["function"].pop("strict", False)
            if t["function"]["name"] == "respond":
                t["function"].pop("description", None)
            out.append((t, strict))
        return out

    assert strictness(mine.get("tools")) == strictness(theirs.get("tools"))
    # (`stream`: they send `false`, switchyard leaves it out; the same for the provider.)
    # (They keep `temperature` as a 32-bit float, so 0.3 arrives as 0.30000001192092896.)
    if theirs.get("temperature") is None:
        assert mine.get("temperature") is None
    else:
        assert mine.get("temperature") == pytest.approx(theirs["temperature"], rel=1e-6)
    for field in ("model", "messages", "response_format", "tool_choice", "parallel_tool_calls",
                  "max_completion_tokens", "seed", "stop"):
        assert mine.get(field) == theirs.get(field), f"{field}: ours {mine.get(field)!r}, theirs {theirs.get(field)!r}"
