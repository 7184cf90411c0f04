"""The configurations the benchmark runs, as text (MOCK, RELAY and KEYFILE are filled in)."""

# One model on the mock, and the function the TensorZero Gateway's own load test uses.
GATEWAY = """
[models."gpt-4.1-mini"]
routing = ["openai"]
[models."gpt-4.1-mini".providers.openai]
type = "openai"
api_base = "http://MOCK/v1/"
model_name = "gpt-4.1-mini"
api_key_location = "none"

[functions.function1]
type = "chat"
[functions.function1.variants.variant1]
type = "chat_completion"
model = "gpt-4.1-mini"
max_tokens = 100

# What an edge mostly serves: schema-checked arguments rendered through templates.
[functions.templated]
type = "chat"
system_schema = "TEMPLATES/system.json"
user_schema = "TEMPLATES/user.json"
[functions.templated.variants.variant1]
type = "chat_completion"
model = "gpt-4.1-mini"
system_template = "TEMPLATES/system.minijinja"
user_template = "TEMPLATES/user.minijinja"
max_tokens = 100
"""

# The files `templated` names.
TEMPLATE_FILES = {
    "system.json": '{"type": "object", "properties": {"assistant_name": {"type": "string"}}, "required": ["assistant_name"]}',
    "user.json": '{"type": "object", "properties": {"question": {"type": "string", "maxLength": 500}}, "required": ["question"]}',
    "system.minijinja": "You are {{ assistant_name }}, a helpful assistant. Answer in one sentence.",
    "user.minijinja": "Question: {{ question }}",
}

# GATEWAY with the resilience layers on but unused: circuit breakers on, a retry budget, and
# hedging after a minute over a second provider that is never needed. Measured beside GATEWAY
# in the same run, the difference is what the layers cost a healthy request.
GATEWAY_RESILIENT = GATEWAY.replace(
    'routing = ["openai"]',
    'routing = ["openai", "spare"]\nhedge_after_ms = 60000',
    1,
).replace(
    'api_key_location = "none"',
    'api_key_location = "none"\n[models."gpt-4.1-mini".providers.spare]\ntype = "openai"\n'
    'api_base = "http://MOCK/v1/"\nmodel_name = "gpt-4.1-mini"\napi_key_location = "none"',
    1,
) + """
[gateway.circuit_breaker]
enabled = true

[gateway.retry_budget]
ratio = 0.2
"""

EDGE = """
[gateway.relay]
gateway_url = "http://RELAY"

[models."gpt-4.1-mini"]
routing = ["openai"]
[models."gpt-4.1-mini".providers.openai]
type = "openai"
model_name = "gpt-4.1-mini"

[functions.function1]
type = "chat"
[functions.function1.variants.variant1]
type = "chat_completion"
model = "gpt-4.1-mini"
max_tokens = 100
"""

# A relay with auth on and three rules whose limits are never reached: it measures the cost of
# checking, not of refusing.
RELAY_SECURED = GATEWAY + """
[gateway]
auth.enabled = true

[[rate_limiting.rules]]
model_inferences_per_second = 1000000
priority = 1
scope = [{ tag_key = "user_id", tag_value = "tensorzero::each" }]

[[rate_limiting.rules]]
tokens_per_minute = 1000000000
always = true
scope = [{ api_key_public_id = "tensorzero::each" }]

[[rate_limiting.rules]]
model_inferences_per_minute = 100000000
always = true
"""
