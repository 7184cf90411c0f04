"""The observability store through TensorZero's own Python client: inferences stored in
Postgres, feedback, stored inferences read back, datasets."""

import json
import os
import subprocess
import time
import urllib.request

import openai
import pytest
from tensorzero import (
    CreateDatapointRequestChat,
    CreateDatapointsFromInferenceRequestParamsInferenceIds,
    InferenceFilterTag,
    ListDatapointsRequest,
    ListInferencesRequest,
    TensorZeroError,
    TensorZeroGateway,
)

from conftest import TARGET, start_gateway

CONFIG = """
[models.mock]
routing = ["mock"]
[models.mock.providers.mock]
type = "openai"
api_base = "http://{mock}/v1"
model_name = "mock-model"
api_key_location = "none"

[models.tool]
routing = ["mock"]
[models.tool.providers.mock]
type = "openai"
api_base = "http://{mock}/v1"
model_name = "tool"
api_key_location = "none"

[metrics.task_success]
type = "boolean"
level = "inference"
optimize = "max"

[metrics.rating]
type = "float"
level = "episode"
optimize = "max"

[tools.get_weather]
description = "Weather"
parameters = "weather.json"

[functions.weather]
type = "chat"
tools = ["get_weather"]
[functions.weather.variants.only]
type = "chat_completion"
model = "tool"
"""


@pytest.fixture(scope="module")
def stored_files(tmp_path_factory):
    """The object storage directory of `storing_gateway`."""
    return tmp_path_factory.mktemp("object-storage")


@pytest.fixture(scope="module")
def storing_gateway(postgres, mock_provider, stored_files, tmp_path_factory):
    out = subprocess.run(
        [str(TARGET / "switchyard"), "--run-postgres-migrations"],
        env={**os.environ, "TENSORZERO_POSTGRES_URL": postgres.url, "RUST_LOG": "warn"},
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    d = tmp_path_factory.mktemp("observability")
    (d / "weather.json").write_text('{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}')
    config = d / "tensorzero.toml"
    config.write_text(CONFIG.replace("{mock}", mock_provider) + f'\n[object_storage]\ntype = "filesystem"\npath = "{stored_files}"\n')
    p, addr = start_gateway(config, d, {"TENSORZERO_POSTGRES_URL": postgres.url})
    yield f"http://{addr}"
    p.stop()






def test_feedback_and_stored_inferences_through_the_tensorzero_client(storing_gateway):
    with TensorZeroGateway.build_http(gateway_url=storing_gateway) as client:
        tagged = []
        for i in range(3):
            r = client.inference(
                function_name="weather",
                input={"messages": [{"role": "user", "content": f"city {i}"}]},
                tags={"batch": "py", "n": str(i)},
            )
            tagged.append(str(r.inference_id))
        episode = client.inference(
            function_name="weather", input={"messages": [{"role": "user", "content": "rated"}]}
        ).episode_id

        f = client.feedback(metric_name="task_success", value=True, inference_id=tagged[0], tags={"by": "py"})
        assert f.feedback_id
        client.feedback(metric_name="rating", value=0.75, episode_id=episode)
        client.feedback(metric_name="comment", value="fine", inference_id=tagged[1])
        client.feedback(
            metric_name="demonstration",
            value=[{"type": "tool_call", "name": "get_weather", "arguments": {"city": "Oslo"}}],
            inference_id=tagged[2],
        )
        with pytest.raises(TensorZeroError) as e:
            client.feedback(metric_name="no_such_metric", value=True, inference_id=tagged[0])
        assert e.value.status_code == 404

        listed = client.list_inferences(
            request=ListInferencesRequest(
                function_name="weather",
                filters=InferenceFilterTag(key="batch", value="py", comparison_operator="="),
            )
        ).inferences
        assert [str(i.inference_id) for i in listed] == list(reversed(tagged))
        first = listed[-1]
        assert first.function_name == "weather" and first.variant_name == "only"
        assert first.tags["n"] == "0"
        assert first.output[0].name == "get_weather"

        # Feedback is written after its response (as TensorZero defers it): wait for it.
        deadline = time.monotonic() + 10
        while True:
            got = client.get_inferences(ids=[tagged[2]], output_source="demonstration").inferences
            if got or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert len(got) == 1
        assert got[0].output[0].arguments == {"city": "Oslo"}


def test_datasets_through_the_tensorzero_client(storing_gateway):
    with TensorZeroGateway.build_http(gateway_url=storing_gateway) as client:
        r = client.inference(function_name="weather", input={"messages": [{"role": "user", "content": "Bergen?"}]})
        inference_id = str(r.inference_id)
        # Stored within milliseconds, after the response: wait until it can be read.
        deadline = time.monotonic() + 10
        while not client.get_inferences(ids=[inference_id]).inferences and time.monotonic() < deadline:
            time.sleep(0.05)
        created = client.create_datapoints(
            dataset_name="py_set",
            requests=[
                CreateDatapointRequestChat(
                    function_name="weather",
                    input={"messages": [{"role": "user", "content": [{"type": "text", "text": "Nice?"}]}]},
                    tags={"src": "hand"},
                )
            ],
        ).ids
        from_inference = client.create_datapoints_from_inferences(
            dataset_name="py_set",
            params=CreateDatapointsFromInferenceRequestParamsInferenceIds(inference_ids=[inference_id]),
        ).ids
        assert len(created) == 1 and len(from_inference) == 1

        listed = client.list_datapoints(dataset_name="py_set", request=ListDatapointsRequest(function_name="weather")).datapoints
        assert {str(d.id) for d in listed} == {str(created[0]), str(from_inference[0])}
        got = client.get_datapoints(dataset_name="py_set", ids=[str(from_inference[0])]).datapoints
        assert str(got[0].source_inference_id) == inference_id

        deleted = client.delete_datapoints(dataset_name="py_set", ids=[str(created[0])])
        assert deleted.num_deleted_datapoints == 1
        assert client.delete_dataset(dataset_name="py_set").num_deleted_datapoints == 1
        assert client.list_datapoints(dataset_name="py_set", request=ListDatapointsRequest()).datapoints == []


def test_responses_continue_from_a_stored_response(storing_gateway, mock_provider):
    client = openai.OpenAI(base_url=f"{storing_gateway}/openai/v1", api_key="unused")
    first = client.responses.create(model="mock", input="My name is Ada.")
    assert first.store is True
    second = client.responses.create(model="mock", input="What is my name?", previous_response_id=first.id)
    assert second.previous_response_id == first.id
    sent = json.load(urllib.request.urlopen(f"http://{mock_provider}/mock/requests"))[-1]["body"]
    assert [(m["role"], m["content"]) for m in sent["messages"]] == [
        ("user", "My name is Ada."),
        ("assistant", "mock reply to: My name is Ada."),
        ("user", "What is my name?"),
    ]
    # Not stored, so not continuable.
    unstored = client.responses.create(model="mock", input="Forget me.", store=False)
    assert unstored.store is False
    with pytest.raises(openai.NotFoundError) as e:
        client.responses.create(model="mock", input="Who?", previous_response_id=unstored.id)
    assert "not found" in str(e.value)


# A 1x1 PNG.
PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


def test_input_files_go_to_object_storage_and_come_back_for_the_next_turn(storing_gateway, stored_files, mock_provider, postgres, tmp_path):
    import base64
    import hashlib

    client = openai.OpenAI(base_url=f"{storing_gateway}/openai/v1", api_key="unused")
    first = client.responses.create(model="mock", input=[{"role": "user", "content": [
        {"type": "input_text", "text": "What is in this picture?"},
        {"type": "input_image", "image_url": f"data:image/png;base64,{PIXEL}"},
    ]}])
    # The stored input points at the file where the bytes now are.
    path = f"observability/files/{hashlib.sha256(PIXEL.encode()).hexdigest()}.png"
    deadline = time.monotonic() + 10
    while not (stored_files / path).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (stored_files / path).read_bytes() == base64.b64decode(PIXEL)
    with TensorZeroGateway.build_http(gateway_url=storing_gateway) as tz:
        inference_id = first.id.removeprefix("resp_")
        deadline = time.monotonic() + 10
        while not (stored := tz.get_inferences(ids=[inference_id]).inferences) and time.monotonic() < deadline:
            time.sleep(0.05)
    stored_input = json.loads(json.dumps(stored[0].input, default=lambda o: o.__dict__))
    pointers = [b for m in stored_input["messages"] for b in m["content"] if b.get("type") == "file"]
    assert pointers and pointers[0]["storage_path"] == {"kind": {"type": "filesystem", "path": str(stored_files)}, "path": path}

    # A stored input sent again (as TensorZero's tools send a datapoint's or an inference's
    # input, pointers and all) gets its file from storage, in either pointer form.
    for pointer_form in ({}, {"file_type": "object_storage_pointer"}):
        again = json.loads(json.dumps(stored_input))
        for m in again["messages"]:
            for b in m["content"]:
                if b.get("type") == "file":
                    b.update(pointer_form)
        body = json.dumps({"model_name": "mock", "input": again}).encode()
        request = urllib.request.Request(f"{storing_gateway}/inference", data=body, headers={"Content-Type": "application/json"})
        assert urllib.request.urlopen(request, timeout=30).status == 200
        resent = json.load(urllib.request.urlopen(f"http://{mock_provider}/mock/requests"))[-1]["body"]
        assert f"data:image/png;base64,{PIXEL}" in json.dumps(resent)
    # A pointer at nothing is the client's mistake, and says which block.
    broken = json.loads(json.dumps(stored_input))
    for m in broken["messages"]:
        for b in m["content"]:
            if b.get("type") == "file":
                b["storage_path"]["path"] = "observability/files/" + "0" * 64 + ".png"
    body = json.dumps({"model_name": "mock", "input": broken}).encode()
    request = urllib.request.Request(f"{storing_gateway}/inference", data=body, headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(request, timeout=30)
    assert e.value.code == 400 and "points at a stored file that cannot be read" in e.value.read().decode()

    # The next turn sends the picture again, from storage.
    second = client.responses.create(model="mock", input="And its colour?", previous_response_id=first.id)
    assert second.previous_response_id == first.id
    sent = json.load(urllib.request.urlopen(f"http://{mock_provider}/mock/requests"))[-1]["body"]
    images = [part["image_url"]["url"] for m in sent["messages"] if isinstance(m["content"], list)
              for part in m["content"] if part.get("type") == "image_url"]
    assert images == [f"data:image/png;base64,{PIXEL}"]

    # A gateway without object storage keeps no bytes: such a response cannot be continued,
    # and the refusal says what to do.
    d = tmp_path / "no-files"
    d.mkdir()
    (d / "weather.json").write_text('{"type":"object"}')
    (d / "tensorzero.toml").write_text(CONFIG.replace("{mock}", mock_provider))
    p, addr = start_gateway(d / "tensorzero.toml", d, {"TENSORZERO_POSTGRES_URL": postgres.url})
    try:
        bare = openai.OpenAI(base_url=f"http://{addr}/openai/v1", api_key="unused")
        kept_nothing = bare.responses.create(model="mock", input=[{"role": "user", "content": [
            {"type": "input_image", "image_url": f"data:image/png;base64,{PIXEL}"},
        ]}])
        time.sleep(0.5)
        with pytest.raises(openai.BadRequestError) as e:
            bare.responses.create(model="mock", input="And?", previous_response_id=kept_nothing.id)
        assert "object_storage" in str(e.value) and "bytes were not kept" in str(e.value), str(e.value)
    finally:
        p.stop()


def test_input_files_go_to_an_s3_compatible_bucket_signed_as_s3_wants(storing_gateway, postgres, mock_provider, tmp_path):
    # (storing_gateway: the database has its tables.)
    import base64
    import hashlib

    from aws_mock import S3Mock

    s3 = S3Mock("AKIDS3TEST", "s3-secret-key")
    d = tmp_path / "s3"
    d.mkdir()
    (d / "weather.json").write_text('{"type":"object"}')
    (d / "tensorzero.toml").write_text(CONFIG.replace("{mock}", mock_provider) + f"""
[object_storage]
type = "s3_compatible"
endpoint = "{s3.url}"
bucket_name = "llm-files"
region = "eu-west-1"
allow_http = true
""")
    env = {"TENSORZERO_POSTGRES_URL": postgres.url, "S3_ACCESS_KEY_ID": "AKIDS3TEST", "S3_SECRET_ACCESS_KEY": "s3-secret-key"}
    p, addr = start_gateway(d / "tensorzero.toml", d, env)
    try:
        client = openai.OpenAI(base_url=f"http://{addr}/openai/v1", api_key="unused")
        image = [{"role": "user", "content": [{"type": "input_image", "image_url": f"data:image/png;base64,{PIXEL}"}]}]
        first = client.responses.create(model="mock", input=image)
        key = f"observability/files/{hashlib.sha256(PIXEL.encode()).hexdigest()}.png"
        deadline = time.monotonic() + 10
        while ("llm-files", key) not in s3.objects and time.monotonic() < deadline:
            time.sleep(0.05)
        assert s3.objects[("llm-files", key)] == ("image/png", base64.b64decode(PIXEL)), s3.refused

        # The next turn reads it back from the bucket (a signed GET) and sends it again.
        client.responses.create(model="mock", input="And?", previous_response_id=first.id)
        sent = json.load(urllib.request.urlopen(f"http://{mock_provider}/mock/requests"))[-1]["body"]
        assert f"data:image/png;base64,{PIXEL}" in json.dumps(sent)
        assert s3.refused == [] and s3.verified >= 2

        # A bucket that refuses writes fails no inference; the failure is counted.
        s3.refuse_writes = True
        other = base64.b64encode(base64.b64decode(PIXEL) + b"more").decode()
        client.responses.create(model="mock", input=[{"role": "user", "content": [{"type": "input_image", "image_url": f"data:image/png;base64,{other}"}]}])
        deadline = time.monotonic() + 10
        metrics = ""
        while 'switchyard_object_storage_writes_total{outcome="error"} 1' not in metrics and time.monotonic() < deadline:
            time.sleep(0.05)
            metrics = urllib.request.urlopen(f"http://{addr}/metrics").read().decode()
        assert 'switchyard_object_storage_writes_total{outcome="error"} 1' in metrics
        assert 'switchyard_object_storage_writes_total{outcome="ok"} 1' in metrics
        # The key never reaches the log.
        assert "s3-secret-key" not in p.output()
    finally:
        p.stop()
        s3.shutdown()
