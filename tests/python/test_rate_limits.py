"""Rate limits seen by a real client through edge and relay: the OpenAI SDK gets a 429 with
Retry-After and the OpenAI-style rate-limit headers."""

import openai
import pytest

from conftest import start_gateway

RELAY = """
[models.mock]
routing = ["p"]
[models.mock.providers.p]
type = "openai"
api_base = "http://MOCK/v1/"
model_name = "mock-model"
api_key_location = "none"

[rate_limiting]
backend = "memory"
[[rate_limiting.rules]]
model_inferences_per_hour = 2
priority = 0
scope = [{ tag_key = "user_id", tag_value = "tensorzero::each" }]
"""

EDGE = """
[gateway.relay]
gateway_url = "RELAY"

[models.mock]
routing = ["p"]
[models.mock.providers.p]
type = "openai"
model_name = "unused"
"""


def test_openai_sdk_sees_429_with_retry_after_through_edge_and_relay(mock_provider, tmp_path):
    (tmp_path / "relay").mkdir()
    relay_cfg = tmp_path / "relay.toml"
    relay_cfg.write_text(RELAY.replace("MOCK", mock_provider))
    relay, relay_addr = start_gateway(relay_cfg, tmp_path / "relay")
    (tmp_path / "edge").mkdir()
    edge_cfg = tmp_path / "edge.toml"
    edge_cfg.write_text(EDGE.replace("RELAY", f"http://{relay_addr}"))
    edge, edge_addr = start_gateway(edge_cfg, tmp_path / "edge")
    try:
        # max_retries=0: the SDK would otherwise honour Retry-After itself and wait.
        client = openai.OpenAI(base_url=f"http://{edge_addr}/openai/v1", api_key="not-used", max_retries=0)

        def ask(user):
            return client.chat.completions.create(
                model="tensorzero::model_name::mock",
                messages=[{"role": "user", "content": "hi"}],
                extra_body={"tensorzero::tags": {"user_id": user}},
            )

        assert ask("ann").choices[0].message.content == "mock reply to: hi"
        ask("ann")
        with pytest.raises(openai.RateLimitError) as e:
            ask("ann")
        assert e.value.status_code == 429
        assert int(e.value.response.headers["retry-after"]) >= 1
        assert "rate limit exceeded" in e.value.message
        assert ask("bob").choices[0].message.content == "mock reply to: hi", "another user has their own bucket"

        # Directly at the relay: the OpenAI-style headers the SDK's retry logic reads.
        direct = openai.OpenAI(base_url=f"http://{relay_addr}/openai/v1", api_key="not-used", max_retries=0)
        with pytest.raises(openai.RateLimitError) as e:
            direct.chat.completions.create(
                model="tensorzero::model_name::mock",
                messages=[{"role": "user", "content": "hi"}],
                extra_body={"tensorzero::tags": {"user_id": "ann"}},
            )
        h = e.value.response.headers
        assert h["x-ratelimit-limit-requests"] == "2" and h["x-ratelimit-remaining-requests"] == "0"
        assert h["x-ratelimit-reset-requests"].endswith("s")
    finally:
        edge.stop()
        relay.stop()
