"""The dashboard and the alerts an operator imports: every PromQL expression in them names only
metrics and labels a gateway really exposes on /metrics after serving traffic, and the alerting
rules pass promtool's checks and its unit tests."""

import concurrent.futures
import json
import re
import shutil
import subprocess
import urllib.error
import urllib.request

import pytest
import yaml

from conftest import ROOT, start_gateway, switchyard_admin

DASHBOARD = ROOT / "deploy/grafana/switchyard.json"
ALERTS = ROOT / "deploy/prometheus/switchyard-alerts.yaml"
ALERT_TESTS = ROOT / "tests/prometheus/alerts_test.yaml"

# A relay with everything the dashboard shows switched on: API keys (Postgres), rate limits in
# Redis, the observability store with a queue small enough to overflow, a model that falls back,
# a provider whose circuit opens, retries within a budget, and prices.
CONFIG = """
[gateway]
auth.enabled = true

[gateway.retry_budget]
ratio = 0.0
min_per_second = 0.1
window_s = 10

[gateway.observability]
enabled = true
async_writes = true
[gateway.observability.batch_writes]
write_queue_capacity = 1

[object_storage]
type = "filesystem"
path = "FILES"

[rate_limiting]
backend = "valkey"
[[rate_limiting.rules]]
always = true
model_inferences_per_minute = 100000
[[rate_limiting.rules]]
priority = 1
model_inferences_per_hour = 1
scope = [{ tag_key = "tier", tag_value = "free" }]

[models.priced]
routing = ["p"]
[models.priced.providers.p]
type = "openai"
api_base = "http://MOCK/v1/"
model_name = "mock-model"
api_key_location = "none"
cost = [
  { pointer = "/usage/prompt_tokens", cost_per_million = 1.0 },
  { pointer = "/usage/completion_tokens", cost_per_million = 2.0 },
]

[models.fallback]
routing = ["down", "up"]
[models.fallback.providers.down]
type = "openai"
api_base = "http://MOCK/v1/"
model_name = "error-503"
api_key_location = "none"
circuit_breaker = { enabled = true, consecutive_failures = 1 }
[models.fallback.providers.up]
type = "openai"
api_base = "http://MOCK/v1/"
model_name = "mock-model"
api_key_location = "none"

[models.flaky]
routing = ["p"]
[models.flaky.providers.p]
type = "openai"
api_base = "http://MOCK/v1/"
model_name = "error-503"
api_key_location = "none"

[functions.ask]
type = "chat"
[functions.ask.variants.v]
type = "chat_completion"
model = "priced"

[functions.shaky]
type = "chat"
[functions.shaky.variants.v]
type = "chat_completion"
model = "flaky"
retries = { num_retries = 1, max_delay_s = 0.01 }
"""


def post(url, path, body, key, headers=None):
    request = urllib.request.Request(
        url + path, data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def ask(function=None, model=None, text="hi", **extra):
    body = {"input": {"messages": [{"role": "user", "content": text}]}, **extra}
    if function:
        body["function_name"] = function
    else:
        body["model_name"] = model
    return body


def exposition(url, key):
    # With API keys on, /metrics needs one too (Prometheus gets one in its scrape config).
    request = urllib.request.Request(url + "/metrics", headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(request, timeout=10) as r:
        return r.read().decode()


def exposed(text):
    """{metric family: set of label names seen on its series}, with the `_bucket`, `_sum` and
    `_count` series of histograms under their family."""
    families = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, _ = line.split(" ", 3)
            families.setdefault(name, set())
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? ", line)
        name, labels = match.group(1), match.group(2) or ""
        family = next((f for f in (name, re.sub(r"_(bucket|sum|count)$", "", name)) if f in families), None)
        assert family, f"series {name} has no # TYPE line"
        families[family] |= set(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="', labels))
    return families


# What PromQL puts in a selector or a grouping that is not a metric's own label: the job and
# instance Prometheus adds when it scrapes, and a histogram's bucket bound.
ADDED_BY_PROMETHEUS = {"job", "instance", "le"}
FUNCTIONS_AND_KEYWORDS = {
    "sum", "rate", "irate", "increase", "histogram_quantile", "clamp_min", "clamp_max", "max", "min", "avg",
    "by", "without", "and", "or", "unless", "on", "ignoring", "group_left", "group_right", "count", "topk",
    "bottomk", "abs", "label_values", "offset", "bool", "time", "vector", "scalar", "absent", "delta", "deriv",
}


def metrics_and_labels(expr):
    """The metric names in a PromQL expression, each with the labels its selector or the
    surrounding aggregation names."""
    # Template variables and durations are not names.
    variable_query = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", expr.strip())
    if variable_query:  # a Grafana variable's query: a metric and one of its labels
        return {variable_query.group(1)}, {variable_query.group(2)}
    expr = re.sub(r"\$\{?[a-zA-Z_]+\}?", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    strings = re.compile(r'"(?:[^"\\]|\\.)*"')
    names, labels = set(), set()
    for match in re.finditer(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}", strings.sub('""', expr)):
        labels |= set(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", match.group(2)))
    bare = strings.sub('""', expr)
    bare = re.sub(r"\{[^}]*\}", "", bare)
    for match in re.finditer(r"\b(by|without|on|ignoring)\s*\(([^)]*)\)", bare):
        labels |= {l.strip() for l in match.group(2).split(",") if l.strip()}
    bare = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", bare)
    for token in re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b", bare):
        if token not in FUNCTIONS_AND_KEYWORDS and not re.fullmatch(r"e\d*|\d.*", token):
            names.add(token)
    return names, labels


def dashboard_expressions():
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [(p["title"], t["expr"]) for p in dashboard["panels"] for t in p.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            exprs.append((f"variable {variable['name']}", variable["query"]["query"]))
    return exprs


def alert_expressions():
    rules = yaml.safe_load(ALERTS.read_text())
    return [(r["alert"], r["expr"]) for g in rules["groups"] for r in g["rules"]]


@pytest.fixture(scope="module")
def served(postgres, redis, mock_provider, tmp_path_factory):
    """A gateway that has served every kind of traffic the dashboard shows; yields its /metrics."""
    switchyard_admin(postgres, "--run-postgres-migrations")
    key = switchyard_admin(postgres, "--create-api-key", "--description", "dashboard").strip()
    d = tmp_path_factory.mktemp("monitoring")
    config = d / "tensorzero.toml"
    (d / "files").mkdir()
    config.write_text(CONFIG.replace("MOCK", mock_provider).replace("FILES", str(d / "files")))
    proc, addr = start_gateway(config, d, extra_env={
        "TENSORZERO_POSTGRES_URL": postgres.url, "TENSORZERO_VALKEY_URL": redis,
        # The port for Prometheus: metrics only, no API key.
        "SWITCHYARD_METRICS_BIND_ADDRESS": "127.0.0.1:0",
    })
    url = f"http://{addr}"
    metrics_url = "http://" + json.loads(proc.wait_for(r'\{[^\n]*"switchyard metrics listening"[^\n]*\}').group(0))["address"]
    try:
        # Answered and priced, streamed and not; via a function and via the OpenAI route.
        assert post(url, "/inference", ask("ask"), key)[0] == 200
        assert post(url, "/inference", ask("ask", stream=True), key)[0] == 200
        openai_body = {"model": "tensorzero::model_name::priced", "messages": [{"role": "user", "content": "hi"}]}
        assert post(url, "/openai/v1/chat/completions", openai_body, key)[0] == 200
        # A fallback that opens the first provider's circuit; then the circuit skips it.
        for _ in range(3):
            assert post(url, "/inference", ask(model="fallback"), key)[0] == 200
        # A retry the budget allows, then ones it refuses.
        for _ in range(3):
            assert post(url, "/inference", ask("shaky"), key)[0] >= 500
        # A rate limit that refuses the second call with the tag.
        statuses = [post(url, "/inference", ask("ask", tags={"tier": "free"}), key)[0] for _ in range(2)]
        assert statuses == [200, 429], statuses
        # Refused keys.
        assert post(url, "/inference", ask("ask"), "sk-t0-abcdefabcdef-" + "a" * 48)[0] == 401
        assert post(url, "/inference", ask("ask"), "not-a-key")[0] == 401
        # Bursts until the one-row write queue overflows.
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            for _ in range(20):
                list(pool.map(lambda i: post(url, "/inference", ask("ask", text=str(i)), key), range(32)))
                if 'switchyard_observability_rows_dropped_total{reason="queue_full"}' in exposition(url, key):
                    break
        yield {"text": exposition(url, key), "url": url, "metrics_url": metrics_url, "key": key}
    finally:
        proc.stop()


def problems_in(expressions, families, source):
    """What in `expressions` ((where, PromQL) pairs) /metrics does not have."""
    problems = []
    for where, expr in expressions:
        names, labels = metrics_and_labels(expr)
        if not names:
            problems.append(f"{source} {where}: no metric found in {expr!r}")
        for name in names:
            family = next((f for f in (name, re.sub(r"_(bucket|sum|count)$", "", name)) if f in families), None)
            if family is None:
                problems.append(f"{source} {where}: {name} is not on /metrics")
                continue
            unknown = labels - families[family] - ADDED_BY_PROMETHEUS
            # A label is checked against every metric of the expression that could carry it.
            if unknown and not any(unknown <= families.get(n, set()) for n in names if n != name):
                problems.append(f"{source} {where}: {name} has no label(s) {sorted(unknown)} (it has {sorted(families[family])})")
    return problems


@pytest.mark.parametrize(("source", "expressions"), [("dashboard", dashboard_expressions), ("alerts", alert_expressions)])
def test_every_expression_names_only_exposed_metrics_and_labels(served, source, expressions):
    problems = problems_in(expressions(), exposed(served["text"]), source)
    assert not problems, "\n".join(problems)


def test_the_check_catches_a_misspelt_metric_or_label(served):
    families = exposed(served["text"])
    wrong = [
        ("misspelt label", 'sum by (modell) (rate(switchyard_provider_requests_total{job=~"$job"}[$__rate_interval]))'),
        ("misspelt metric", "sum(rate(switchyard_provider_request_total[5m]))"),
        ("label of another metric", 'rate(switchyard_http_requests_total{reason="x"}[5m])'),
    ]
    problems = problems_in(wrong, families, "test")
    assert len(problems) == 3, problems


def test_the_metrics_port_serves_prometheus_without_a_key_and_nothing_else(served):
    # The main port wants a key for /metrics (API keys are on); the metrics port does not.
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(served["url"] + "/metrics", timeout=10)
    assert refused.value.code == 401
    with urllib.request.urlopen(served["metrics_url"] + "/metrics", timeout=10) as r:
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = r.read().decode()
    assert exposed(text).keys() == exposed(served["text"]).keys()
    assert 'switchyard_http_requests_total{route="/inference",method="POST",status="200"}' in text
    # Nothing else is served there: not the API, not another method.
    for method, path, status in [("GET", "/inference", 404), ("POST", "/inference", 404), ("POST", "/metrics", 405), ("GET", "/health", 404)]:
        request = urllib.request.Request(served["metrics_url"] + path, method=method, data=b"{}" if method == "POST" else None,
                                         headers={"Authorization": f"Bearer {served['key']}"})
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(request, timeout=10)
        assert answer.value.code == status, (method, path)
        assert "serves only GET /metrics" in answer.value.read().decode()


def test_the_dashboard_covers_what_operators_ask_for():
    dashboard = json.loads(DASHBOARD.read_text())
    text = json.dumps(dashboard)
    for metric in (
        "switchyard_http_requests_total", "tensorzero_inference_latency_overhead_seconds_bucket",
        "switchyard_provider_request_duration_seconds_bucket", "switchyard_provider_requests_total",
        "switchyard_model_fallbacks_total", "switchyard_model_retries_total", "switchyard_rate_limit_denied_total",
        "switchyard_tokens_total", "switchyard_cost_dollars_total", "switchyard_streams_in_flight",
        "switchyard_rate_limit_store_duration_seconds_bucket", "switchyard_rate_limit_store_errors_total",
        "switchyard_auth_failures_total",
    ):
        assert metric in text, metric
    # Relay or edge: every panel follows the job variable.
    for where, expr in dashboard_expressions():
        if not where.startswith("variable"):
            assert 'job=~"$job"' in expr, where
    assert {v["name"] for v in dashboard["templating"]["list"]} >= {"datasource", "job"}


def test_the_dashboard_is_well_formed_for_import():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 36
    panels = dashboard["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    cells = set()
    for p in panels:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24, (p["title"], "wider than the grid")
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, (p["title"], "overlaps another panel")
                cells.add((x, y))
        if p["type"] == "row":
            continue
        # Every query goes to the data source the importer picks.
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert refs and len(refs) == len(set(refs)), p["title"]
        for target in p["targets"]:
            assert target.get("datasource", p["datasource"]) == p["datasource"], p["title"]


def promtool():
    path = shutil.which("promtool")
    assert path, "promtool is not installed (tests/run installs Debian's prometheus package)"
    return path


def test_alerting_rules_pass_promtool_check():
    out = subprocess.run([promtool(), "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: 6 rules found" in out.stdout


def test_every_alert_fires_and_stays_quiet_in_promtool_unit_tests():
    tested = yaml.safe_load(ALERT_TESTS.read_text())
    alerts = {name for name, _ in alert_expressions()}
    covered = {a["alertname"] for t in tested["tests"] for a in t.get("alert_rule_test", [])}
    assert alerts <= covered, f"alerts without a unit test: {alerts - covered}"
    out = subprocess.run([promtool(), "test", "rules", str(ALERT_TESTS)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
