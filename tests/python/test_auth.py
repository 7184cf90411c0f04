"""API keys with real clients: the OpenAI SDK and the TensorZero client pass `sk-t0-` keys."""

import openai
import pytest
from tensorzero import TensorZeroGateway

from conftest import start_gateway, switchyard_admin

CONFIG = """
[gateway]
auth.enabled = true

[models.mock]
routing = ["p"]
[models.mock.providers.p]
type = "openai"
api_base = "http://MOCK/v1/"
model_name = "mock-model"
api_key_location = "none"
"""


@pytest.fixture(scope="module")
def secured(postgres, mock_provider, tmp_path_factory):
    switchyard_admin(postgres, "--run-postgres-migrations")
    key = switchyard_admin(postgres, "--create-api-key", "--description", "python tests").strip()
    d = tmp_path_factory.mktemp("auth")
    cfg = d / "tensorzero.toml"
    cfg.write_text(CONFIG.replace("MOCK", mock_provider))
    proc, addr = start_gateway(cfg, d, extra_env={"TENSORZERO_POSTGRES_URL": postgres.url})
    yield {"url": f"http://{addr}", "key": key, "process": proc}
    proc.stop()


def test_openai_sdk_sends_the_key_as_bearer(secured):
    client = openai.OpenAI(base_url=secured["url"] + "/openai/v1", api_key=secured["key"], max_retries=0)
    r = client.chat.completions.create(model="tensorzero::model_name::mock", messages=[{"role": "user", "content": "hi"}])
    assert r.choices[0].message.content == "mock reply to: hi"
    wrong = openai.OpenAI(base_url=secured["url"] + "/openai/v1", api_key="sk-t0-abcdefabcdef-" + "a" * 48, max_retries=0)
    with pytest.raises(openai.AuthenticationError) as e:
        wrong.chat.completions.create(model="tensorzero::model_name::mock", messages=[{"role": "user", "content": "hi"}])
    assert "does not exist in the database" in e.value.message


def test_tensorzero_client_with_api_key(secured):
    with TensorZeroGateway.build_http(gateway_url=secured["url"], api_key=secured["key"]) as client:
        r = client.inference(model_name="mock", input={"messages": [{"role": "user", "content": "tz"}]})
        assert r.content[0].text == "mock reply to: tz"


def test_listing_shows_the_key_without_its_secret(secured, postgres):
    listing = switchyard_admin(postgres, "--list-api-keys")
    key = secured["key"]
    assert key[6:18] in listing and "python tests" in listing
    assert key[19:] not in listing
    assert key[19:] not in secured["process"].output()
