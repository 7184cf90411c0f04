"""The AWS adapters against AWS's own rules, not the gateway's: a Python mock recomputes every
SigV4 signature with botocore and frames every stream independently (checked by botocore's
event-stream parser), for Bedrock and SageMaker, streaming and not."""

import json
import urllib.request

import pytest

from aws_mock import AwsMock
from conftest import start_gateway

ACCESS_KEY = "AKIDINDEPENDENTCHECK"
SECRET = "independent-secret-key-0123456789"
TOKEN = "independent-session-token"


def config(mock):
    return f"""
[models.claude]
routing = ["b"]
[models.claude.providers.b]
type = "aws_bedrock"
model_id = "anthropic.claude-3-haiku-20240307-v1:0"
region = "eu-west-3"
endpoint_url = "{mock.url}"

[models.flipped]
routing = ["b"]
[models.flipped.providers.b]
type = "aws_bedrock"
model_id = "crc-flip"
region = "eu-west-3"
endpoint_url = "{mock.url}"

[models.sm]
routing = ["s"]
[models.sm.providers.s]
type = "aws_sagemaker"
endpoint_name = "my-endpoint"
hosted_provider = "openai"
model_name = "served"
region = "ap-south-1"
endpoint_url = "{mock.url}"
"""


def post(addr, body):
    request = urllib.request.Request(f"http://{addr}/inference", data=json.dumps(body).encode(), headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def inference(model, stream):
    return {"model_name": model, "stream": stream, "input": {"messages": [{"role": "user", "content": "hi"}]}}


def streamed_text(text):
    events = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ") and line != "data: [DONE]"]
    return events, "".join(block.get("text", "") for e in events for block in e.get("content", []))


@pytest.fixture()
def aws(tmp_path):
    mock = AwsMock(ACCESS_KEY, SECRET, TOKEN)
    path = tmp_path / "tensorzero.toml"
    path.write_text(config(mock))
    env = {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_SESSION_TOKEN": TOKEN}
    gateway, addr = start_gateway(path, tmp_path, env)
    yield mock, addr, gateway
    gateway.stop()
    mock.shutdown()


def test_bedrock_and_sagemaker_calls_carry_signatures_aws_accepts(aws):
    mock, addr, _ = aws
    status, text = post(addr, inference("claude", False))
    assert status == 200, text
    assert json.loads(text)["content"][0]["text"] == "independent reply from aws"
    status, text = post(addr, inference("claude", True))
    assert status == 200, text
    events, joined = streamed_text(text)
    assert joined == "independent reply from aws", events
    assert events[-1]["usage"]["input_tokens"] == 11 and events[-1]["usage"]["output_tokens"] == 4, events[-1]
    status, text = post(addr, inference("sm", False))
    assert status == 200, text
    assert json.loads(text)["content"][0]["text"] == "independent sagemaker reply"
    status, text = post(addr, inference("sm", True))
    assert status == 200, text
    _, joined = streamed_text(text)
    assert joined.strip() == "independent sagemaker reply"
    assert mock.refused == [], mock.refused
    assert mock.verified == 4
    paths = [p for p, _, _ in mock.requests]
    assert paths == [
        "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse",
        "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream",
        "/endpoints/my-endpoint/invocations",
        "/endpoints/my-endpoint/invocations-response-stream",
    ]


def test_a_message_with_a_bad_checksum_is_refused(aws):
    mock, addr, _ = aws
    status, text = post(addr, inference("flipped", True))
    # The damaged message is the first with content: the call fails before the stream starts.
    assert status == 502, text
    assert "an event-stream message has a bad checksum" in text, text


def test_a_wrong_secret_is_refused_by_the_independent_check(tmp_path):
    mock = AwsMock(ACCESS_KEY, SECRET, TOKEN)
    path = tmp_path / "tensorzero.toml"
    path.write_text(config(mock))
    env = {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": "not-the-secret", "AWS_SESSION_TOKEN": TOKEN}
    gateway, addr = start_gateway(path, tmp_path, env)
    try:
        for model, stream in [("claude", False), ("claude", True), ("sm", False), ("sm", True)]:
            status, text = post(addr, inference(model, stream))
            assert status == 502, text
            assert "does not match the signature" in text, text
        assert mock.verified == 0 and len(mock.refused) == 4
    finally:
        gateway.stop()
        mock.shutdown()
