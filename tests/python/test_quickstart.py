"""The README's quick start, run exactly as written (ports substituted), plus the OpenAI SDK."""

import contextlib
import io
import json
import subprocess

import openai
import pytest

from conftest import doc_block


def localize(code, gateway):
    return code.replace("http://localhost:3000", gateway["url"])


def test_readme_curl_streams_an_answer(quickstart_gateway):
    command = localize(doc_block("curl"), quickstart_gateway)
    out = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=30, check=True).stdout
    events = [e[len("data: "):] for e in out.split("\n\n") if e.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    text = "".join(b["text"] for c in chunks for b in c.get("content", []) if b["type"] == "text")
    assert text.startswith("mock reply to: Write a haiku")
    assert chunks[-1]["usage"]["output_tokens"] > 0
    assert chunks[-1]["finish_reason"] == "stop"


def test_readme_openai_sdk_streams_an_answer(quickstart_gateway):
    code = localize(doc_block("openai-sdk"), quickstart_gateway)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "README.md", "exec"), {})
    assert printed.getvalue().startswith("mock reply to: Write a haiku")


@pytest.fixture
def client(quickstart_gateway):
    return openai.OpenAI(base_url=quickstart_gateway["url"] + "/openai/v1", api_key="not-used", max_retries=0)


def test_sdk_non_streaming_and_usage(client):
    r = client.chat.completions.create(
        model="tensorzero::model_name::mock-gpt",
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
        temperature=0.2,
        max_tokens=20,
    )
    assert r.choices[0].message.content == "mock reply to: hi"
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert r.model == "tensorzero::model_name::mock-gpt"


def test_sdk_stream_with_usage_chunk(client):
    stream = client.chat.completions.create(
        model="tensorzero::function_name::haiku",
        messages=[{"role": "user", "content": "count"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "mock reply to: count"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 4


TOOLS_CONFIG = """
[models.weather]
routing = ["mock"]
[models.weather.providers.mock]
type = "openai"
api_base = "http://MOCK/v1/"
model_name = "mock-tool"
api_key_location = "none"
"""


def test_sdk_tool_calls_stream_and_not(mock_provider, tmp_path):
    from conftest import start_gateway

    config = tmp_path / "tensorzero.toml"
    config.write_text(TOOLS_CONFIG.replace("MOCK", mock_provider))
    proc, addr = start_gateway(config, tmp_path)
    try:
        client = openai.OpenAI(base_url=f"http://{addr}/openai/v1", api_key="not-used", max_retries=0)
        tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
        messages = [{"role": "user", "content": "weather in Paris?"}]
        r = client.chat.completions.create(model="tensorzero::model_name::weather", messages=messages, tools=tools)
        call = r.choices[0].message.tool_calls[0]
        assert r.choices[0].finish_reason == "tool_calls"
        assert call.function.name == "get_weather"
        assert json.loads(call.function.arguments) == {"city": "Paris"}

        stream = client.chat.completions.create(
            model="tensorzero::model_name::weather", messages=messages, tools=tools, stream=True
        )
        deltas = [tc for c in stream if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
        assert deltas[0].id == "call_mock_1" and deltas[0].function.name == "get_weather"
        assert all(d.index == 0 for d in deltas)
        assert json.loads("".join(d.function.arguments or "" for d in deltas)) == {"city": "Paris"}
    finally:
        proc.stop()


def test_sdk_errors_are_typed(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert "must start with `tensorzero::function_name::`" in e.value.message
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="tensorzero::model_name::nope", messages=[{"role": "user", "content": "x"}])
    assert "nope" in e.value.message
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="tensorzero::function_name::nope", messages=[{"role": "user", "content": "x"}])


def test_sdk_extra_tensorzero_fields(client):
    r = client.chat.completions.create(
        model="tensorzero::model_name::mock-gpt",
        messages=[{"role": "user", "content": "tagged"}],
        extra_body={"tensorzero::tags": {"team": "search"}, "tensorzero::episode_id": None},
    )
    assert r.choices[0].message.content == "mock reply to: tagged"
