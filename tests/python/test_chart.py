"""The Helm chart (charts/switchyard) and its example app chart, rendered by the real Helm
library (the PyPI package helm-python-sdk embeds it: no binary, no cluster), linted, validated
against the Kubernetes schemas, put through the same checks as the kustomize manifests, and
compared with them so the two cannot drift."""

import copy
import json
import pathlib
import subprocess
import sys

import pytest
import yaml
from helm_python import chart as helm
from helm_python.errors import HelmError

from conftest import ROOT, doc_block
from k8s_checks import (
    by_kind,
    check_containers_locked_down_with_real_flags,
    check_edge_sidecar_serves,
    check_relay_configuration_validates,
    check_relay_fits_together,
    one,
    selects,
    switchyard_containers,
    validate_against_kubernetes_schemas,
    validate_custom_resources,
)
from test_deploy import render as kustomize

CHART = ROOT / "charts/switchyard"
EXAMPLE = ROOT / "charts/examples/app-with-edge"
# The values the chart is rendered with: its defaults, and the two files in ci/.
CASES = {
    "default": None,
    "relay": CHART / "ci/relay-values.yaml",
    "edge": CHART / "ci/edge-values.yaml",
}
RELAY_CASES = ["default", "relay"]
RELAY_HOST = "switchyard-relay.switchyard.svc.cluster.local"


def values_of(case):
    path = CASES[case]
    return yaml.safe_load(path.read_text()) if path else None


def render(values=None, chart_dir=CHART, name="switchyard", namespace="switchyard"):
    """The objects the chart renders (NOTES.txt left out), as `helm template` would print them."""
    manifests = helm.Chart.load(str(chart_dir)).render(values=values, name=name, namespace=namespace)
    docs = []
    for path, text in sorted(manifests.items()):
        if not path.endswith("NOTES.txt"):
            docs += [d for d in yaml.safe_load_all(text) if d]
    return docs


def render_case(case):
    return render(values_of(case))


def render_example():
    return render(chart_dir=EXAMPLE, name="haiku", namespace="demo")


def render_error(values):
    with pytest.raises(HelmError) as failure:
        render(values)
    return str(failure.value)


@pytest.mark.parametrize("chart_dir", [CHART, EXAMPLE], ids=["switchyard", "app-with-edge"])
def test_charts_lint_clean(chart_dir):
    for case in (CASES if chart_dir == CHART else {"default": None}):
        report = helm.lint(str(chart_dir), values_of(case) if chart_dir == CHART else None, strict=True, kube_version="v1.30.0")
        problems = [m for m in report["messages"] if m["severity"] >= 2]
        assert not problems and not report["errors"], (case, report)


@pytest.mark.parametrize("case", [*CASES, "app-with-edge"])
def test_renders_and_matches_the_kubernetes_schemas(case):
    docs = render_example() if case == "app-with-edge" else render_case(case)
    validate_against_kubernetes_schemas(docs, f"chart ({case})")


def test_every_switchyard_container_is_locked_down_and_uses_real_flags():
    for case in RELAY_CASES:
        check_containers_locked_down_with_real_flags(by_kind(render_case(case), "Deployment"), f"chart ({case})")
    check_containers_locked_down_with_real_flags(by_kind(render_example(), "Deployment"), "app-with-edge chart")


@pytest.mark.parametrize("case", RELAY_CASES)
def test_relay_fits_together(case):
    check_relay_fits_together(render_case(case), render_example())


@pytest.mark.parametrize("case", RELAY_CASES)
def test_relay_configuration_validates(case, postgres, tmp_path):
    check_relay_configuration_validates(render_case(case), postgres, tmp_path)


def test_edge_sidecar_in_the_example_app_serves(tmp_path):
    check_edge_sidecar_serves(render_example(), tmp_path, RELAY_HOST)


def test_edge_role_renders_only_the_edge_configuration():
    (config_map,) = render_case("edge")
    assert config_map["kind"] == "ConfigMap"
    assert "[gateway.relay]" in config_map["data"]["tensorzero.toml"]
    # The example app's sidecar mounts the ConfigMap its dependency renders.
    docs = render_example()
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    (volume,) = pod["volumes"]
    assert volume["configMap"]["name"] in {c["metadata"]["name"] for c in by_kind(docs, "ConfigMap")}


def test_monitoring_objects_fit_the_service_and_ship_the_files():
    docs = render_case("relay")
    service = one(docs, "Service")
    monitor = one(docs, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint == {"port": "metrics", "path": "/metrics", "interval": "30s"}, "the metrics port needs no key"
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    # Every edge sidecar, wherever its app runs, by the label and port the sidecar template gives.
    pod_monitor = one(docs, "PodMonitor")
    assert pod_monitor["spec"]["namespaceSelector"] == {"any": True}
    edge_pod = one(render_example(), "Deployment")["spec"]["template"]
    assert selects(pod_monitor["spec"]["selector"], edge_pod["metadata"]["labels"])
    (sidecar,) = switchyard_containers(edge_pod["spec"])
    (edge_endpoint,) = pod_monitor["spec"]["podMetricsEndpoints"]
    assert edge_endpoint["port"] in {p["name"] for p in sidecar["ports"]}
    # The PrometheusRule is the plain rules file, and the dashboard ConfigMap the dashboard.
    rule = one(docs, "PrometheusRule")
    plain = yaml.safe_load((ROOT / "deploy/prometheus/switchyard-alerts.yaml").read_text())
    assert rule["spec"] == plain
    dashboards = [c for c in by_kind(docs, "ConfigMap") if "switchyard.json" in c.get("data", {})]
    (dashboard,) = dashboards
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["switchyard.json"]) == json.loads((ROOT / "deploy/grafana/switchyard.json").read_text())
    # Prometheus is let through the network policy by the values, to the metrics port alone.
    edges, prometheus = one(docs, "NetworkPolicy")["spec"]["ingress"]
    assert prometheus == {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
                          "ports": [{"protocol": "TCP", "port": 9464}]}
    assert edges["ports"] == [{"protocol": "TCP", "port": 3000}]


def test_the_crd_check_catches_a_malformed_monitor():
    docs = render_case("relay")
    monitor = copy.deepcopy(one(docs, "ServiceMonitor"))
    monitor["spec"]["endpoints"][0]["interval"] = "30 seconds"
    rule = copy.deepcopy(one(docs, "PrometheusRule"))
    rule["spec"]["groups"][0]["rules"] = "SwitchyardHighErrorRate"
    problems = validate_custom_resources([monitor, rule, one(docs, "PodMonitor")])
    assert len(problems) == 2, problems
    assert "interval" in problems[0] and "rules" in problems[1]


def test_without_a_metrics_port_prometheus_scrapes_the_api_port_with_a_key():
    docs = render({"metrics": {"port": 0, "serviceMonitor": {"enabled": True, "authorization": {"secretName": "switchyard-metrics-key", "secretKey": "api-key"}}}})
    (endpoint,) = one(docs, "ServiceMonitor")["spec"]["endpoints"]
    assert endpoint["port"] == "http"
    assert endpoint["authorization"] == {"type": "Bearer", "credentials": {"name": "switchyard-metrics-key", "key": "api-key"}}
    (relay,) = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert "--metrics-bind-address" not in relay["args"]
    assert [p["name"] for p in relay["ports"]] == ["http"]


def test_helm_test_probe_asks_the_relay_service_and_is_not_one_of_its_pods():
    docs = render(name="switchyard-relay")
    (probe,) = [d for d in by_kind(docs, "Pod") if d["metadata"]["annotations"].get("helm.sh/hook") == "test"]
    labels = probe["metadata"]["labels"]
    deployment, service = one(docs, "Deployment"), one(docs, "Service")
    assert not selects(deployment["spec"]["selector"], labels), "the Deployment would adopt it"
    assert not selects({"matchLabels": service["spec"]["selector"]}, labels), "the Service would send it traffic"
    # Let in by the relay's policy, as edges are.
    (rule,) = one(docs, "NetworkPolicy")["spec"]["ingress"]
    assert any(selects(peer["podSelector"], labels) for peer in rule["from"])
    (container,) = probe["spec"]["containers"]
    check_containers_locked_down_with_real_flags([{"metadata": probe["metadata"], "spec": {"template": {"spec": probe["spec"]}}}], "helm test pod", gateway_required=False)
    assert container["args"] == ["--probe", f"http://switchyard-relay.switchyard.svc:{service['spec']['ports'][0]['port']}/ready"]


def notes(values):
    manifests = helm.Chart.load(str(CHART)).render(values=values, name="switchyard", namespace="switchyard")
    return manifests["switchyard/templates/NOTES.txt"]


def test_notes_warn_when_prometheus_cannot_reach_the_relay():
    assert "add it to relay.networkPolicy.metricsFrom" in notes({"metrics": {"serviceMonitor": {"enabled": True}}})
    keyed = {"port": 0, "serviceMonitor": {"enabled": True, "authorization": {"secretName": "k", "secretKey": "api-key"}}}
    assert "add it to relay.networkPolicy.extraFrom" in notes({"metrics": keyed})
    assert "Prometheus cannot scrape" not in notes(values_of("relay"))
    assert "Prometheus cannot scrape" not in notes(None)


def test_a_volume_for_filesystem_object_storage_can_be_mounted():
    config = one(render(), "ConfigMap")["data"]["tensorzero.toml"] + '\n[object_storage]\ntype = "filesystem"\npath = "/var/lib/switchyard/files"\n'
    docs = render({
        "config": config,
        "extraVolumes": [{"name": "files", "persistentVolumeClaim": {"claimName": "switchyard-files"}}],
        "extraVolumeMounts": [{"name": "files", "mountPath": "/var/lib/switchyard/files"}],
    })
    validate_against_kubernetes_schemas(docs, "chart with a files volume")
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    (relay,) = pod["containers"]
    assert {"name": "files", "mountPath": "/var/lib/switchyard/files"} in relay["volumeMounts"]
    assert {"name": "files", "persistentVolumeClaim": {"claimName": "switchyard-files"}} in pod["volumes"]


def test_an_image_digest_pins_every_switchyard_container():
    digest = "sha256:" + "ab" * 32
    for docs in (render({"image": {"repository": "registry.example.com/switchyard", "digest": digest}}),
                 render({"switchyard": {"image": {"digest": digest}}}, chart_dir=EXAMPLE, name="haiku", namespace="demo")):
        pods = [d["spec"]["template"]["spec"] for d in by_kind(docs, "Deployment")]
        images = {c["image"] for pod in pods for c in switchyard_containers(pod)}
        assert images and all(i.endswith("@" + digest) for i in images), images
    assert "/image/digest" in render_error({"image": {"digest": "latest"}})


def test_optional_pod_settings_reach_the_pod():
    pod = one(render({"relay": {"priorityClassName": "platform-critical", "nodeSelector": {"pool": "gateways"},
                                "tolerations": [{"key": "gateways", "operator": "Exists"}]}}), "Deployment")["spec"]["template"]["spec"]
    assert pod["priorityClassName"] == "platform-critical"
    assert pod["nodeSelector"] == {"pool": "gateways"}
    assert pod["tolerations"] == [{"key": "gateways", "operator": "Exists"}]
    assert "priorityClassName" not in one(render(), "Deployment")["spec"]["template"]["spec"]


def checksum(docs):
    template = one(docs, "Deployment")["spec"]["template"]
    return template["metadata"].get("annotations", {}).get("checksum/config")


def test_a_config_change_rolls_the_pods_and_live_reload_stays():
    base = checksum(render())
    assert base
    assert checksum(render({"config": "[gateway]\nauth.enabled = true\n"})) not in (None, base)
    assert checksum(render({"rollOnConfigChange": False})) is None
    # An existing ConfigMap: none rendered, the pods mount it, as a directory (so live reload
    # sees edits; config_of in the shared checks refuses subPath mounts).
    docs = render({"existingConfigMap": "team-config"})
    assert not by_kind(docs, "ConfigMap")
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    assert pod["volumes"][0]["configMap"]["name"] == "team-config"
    assert checksum(docs) is None
    (relay,) = pod["containers"]
    assert relay["volumeMounts"][0] == {"name": "config", "mountPath": "/app/config", "readOnly": True}


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"relay": {"replica": 2}}, "additional properties 'replica' not allowed"),
        ({"role": "edge"}, "/role"),
        ({"image": {"tagg": "1"}}, "additional properties 'tagg' not allowed"),
        ({"relay": {"autoscaling": {"minReplicas": "3"}}}, "/relay/autoscaling/minReplicas"),
        ({"logFormat": "text"}, "/logFormat"),
        ({"edge": {"bindAddress": "0.0.0.0:3000"}}, "/edge/bindAddress"),
        ({"relay": {"drainTimeoutSeconds": 60}}, "relay.terminationGracePeriodSeconds (40) must exceed"),
        ({"config": "[gateway\n"}, "values.config is not valid TOML"),
        ({"role": "edge-sidecar"}, "needs a [gateway.relay] table"),
        ({"relay": {"postgresUrl": {"secretName": ""}}}, "set relay.postgresUrl.secretName"),
        ({"metrics": {"port": 0, "serviceMonitor": {"enabled": True}}}, "metrics.serviceMonitor.authorization.secretName"),
        ({"metrics": {"port": 0, "edgePodMonitor": {"enabled": True}}}, "metrics.edgePodMonitor needs metrics.port"),
        ({"metrics": {"port": 3000}}, "/metrics/port"),
    ],
)
def test_bad_values_fail_the_render_with_a_clear_message(values, expected):
    assert expected in render_error(values)


def test_without_postgres_or_valkey_the_relay_runs_on_its_own():
    docs = render({
        "config": "[gateway]\nauth.enabled = false\n",
        "relay": {"postgresUrl": {"secretName": ""}, "valkeyUrl": {"secretName": ""}, "providerKeysSecret": ""},
    })
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    assert "initContainers" not in pod, "no database, no migrations"
    (relay,) = pod["containers"]
    names = {e["name"] for e in relay["env"]}
    assert not names & {"TENSORZERO_POSTGRES_URL", "TENSORZERO_VALKEY_URL"}
    assert "envFrom" not in relay


# --- Drift: the chart and the kustomize manifests deploy the same thing. -----------------------

# What must agree in every switchyard container.
CONTAINER_FIELDS = ["image", "imagePullPolicy", "args", "env", "envFrom", "ports", "startupProbe", "livenessProbe",
                    "readinessProbe", "lifecycle", "resources", "securityContext", "volumeMounts", "restartPolicy"]


def without_release(selector):
    """A chart selector without the release label kustomize has no counterpart for."""
    selector = copy.deepcopy(selector)
    assert selector["matchLabels"].pop("app.kubernetes.io/instance", "switchyard") == "switchyard"
    return selector


def container_view(container):
    view = {field: container.get(field) for field in CONTAINER_FIELDS}
    view["env"] = sorted(view["env"] or [], key=lambda e: e["name"])
    return view


def test_chart_and_kustomize_relay_do_not_drift():
    chart_docs = render()
    kustomize_docs = kustomize("overlays/relay")
    ours, theirs = one(chart_docs, "Deployment"), one(kustomize_docs, "Deployment")

    assert without_release(ours["spec"]["selector"]) == theirs["spec"]["selector"]
    assert ours["spec"]["strategy"] == theirs["spec"]["strategy"]
    pod, their_pod = ours["spec"]["template"]["spec"], theirs["spec"]["template"]["spec"]
    for field in ("securityContext", "terminationGracePeriodSeconds", "automountServiceAccountToken"):
        assert pod[field] == their_pod[field], field
    for mine, theirs_ in zip(pod["topologySpreadConstraints"], their_pod["topologySpreadConstraints"], strict=True):
        assert {**mine, "labelSelector": without_release(mine["labelSelector"])} == theirs_
    for kind in ("initContainers", "containers"):
        assert [c["name"] for c in pod[kind]] == [c["name"] for c in their_pod[kind]], kind
        for mine, theirs_ in zip(pod[kind], their_pod[kind]):
            assert container_view(mine) == container_view(theirs_), (kind, mine["name"])

    service, their_service = one(chart_docs, "Service"), one(kustomize_docs, "Service")
    assert service["spec"]["ports"] == their_service["spec"]["ports"]
    assert without_release({"matchLabels": service["spec"]["selector"]})["matchLabels"] == their_service["spec"]["selector"]

    hpa, their_hpa = one(chart_docs, "HorizontalPodAutoscaler"), one(kustomize_docs, "HorizontalPodAutoscaler")
    assert {k: v for k, v in hpa["spec"].items() if k != "scaleTargetRef"} == {k: v for k, v in their_hpa["spec"].items() if k != "scaleTargetRef"}
    pdb, their_pdb = one(chart_docs, "PodDisruptionBudget"), one(kustomize_docs, "PodDisruptionBudget")
    assert {**pdb["spec"], "selector": without_release(pdb["spec"]["selector"])} == their_pdb["spec"]
    policy, their_policy = one(chart_docs, "NetworkPolicy"), one(kustomize_docs, "NetworkPolicy")
    assert {**policy["spec"], "podSelector": without_release(policy["spec"]["podSelector"])} == their_policy["spec"]

    # The same configuration by default (the overlay's tensorzero.toml).
    (config, their_config) = (one(chart_docs, "ConfigMap"), one(kustomize_docs, "ConfigMap"))
    assert config["data"] == their_config["data"]
    assert not by_kind(chart_docs, "Secret") and not by_kind(kustomize_docs, "Secret")


def test_chart_and_kustomize_edge_sidecar_do_not_drift():
    chart_docs, kustomize_docs = render_example(), kustomize("examples/app-with-edge")
    ours, theirs = one(chart_docs, "Deployment"), one(kustomize_docs, "Deployment")
    (sidecar,), (their_sidecar,) = switchyard_containers(ours["spec"]["template"]["spec"]), switchyard_containers(theirs["spec"]["template"]["spec"])
    assert container_view(sidecar) == container_view(their_sidecar)
    # The label the relay's policy admits, and the same edge configuration.
    assert ours["spec"]["template"]["metadata"]["labels"]["switchyard.dev/edge"] == "true"
    assert theirs["spec"]["template"]["metadata"]["labels"]["switchyard.dev/edge"] == "true"
    config = [c for c in by_kind(chart_docs, "ConfigMap")][0]["data"]["tensorzero.toml"]
    their_config = one(kustomize_docs, "ConfigMap")["data"]["tensorzero.toml"]
    assert config.strip() == their_config.strip()


def test_packaged_charts_render_as_the_directories_do(tmp_path):
    """What `helm package` makes (what a chart repository serves) holds everything: the files
    the templates read, and the example's dependency, resolved from their symlinks."""
    for chart_dir, values, name in [(CHART, values_of("relay"), "switchyard"), (EXAMPLE, None, "haiku")]:
        archive = helm.package(str(chart_dir), destination=str(tmp_path))
        packaged = helm.Chart.load(archive).render(values=values, name=name, namespace="ns")
        unpacked = helm.Chart.load(str(chart_dir)).render(values=values, name=name, namespace="ns")
        assert packaged == unpacked, chart_dir


# --- Documentation. ------------------------------------------------------------------------------

@pytest.mark.parametrize(("readme", "marker"), [(ROOT / "README.md", "helm-relay-values"), (CHART / "README.md", "chart-relay-values")])
def test_readme_relay_values_render_a_valid_relay(readme, marker, postgres, tmp_path):
    docs = render(yaml.safe_load(doc_block(marker, readme)), name="switchyard-relay")
    validate_against_kubernetes_schemas(docs, f"{readme.name} {marker}")
    assert one(docs, "Deployment")["metadata"]["name"] == "switchyard-relay", "the name edges' gateway_url uses"
    check_relay_configuration_validates(docs, postgres, tmp_path)


def test_chart_readme_edge_values_give_a_working_sidecar(tmp_path):
    docs = render(yaml.safe_load(doc_block("chart-edge-values", CHART / "README.md")), chart_dir=EXAMPLE, name="haiku", namespace="demo")
    validate_against_kubernetes_schemas(docs, "chart README edge values")
    check_edge_sidecar_serves(docs, tmp_path, RELAY_HOST)


def test_chart_readme_documents_every_value():
    out = subprocess.run([sys.executable, str(ROOT / "tests/tools/chart_readme.py"), "--check"], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_chart_yaml_is_lint_clean():
    files = [CHART / "values.yaml", CHART / "Chart.yaml", *sorted((CHART / "ci").glob("*.yaml")), EXAMPLE / "values.yaml", EXAMPLE / "Chart.yaml"]
    out = subprocess.run(
        [str(pathlib.Path(sys.executable).parent / "yamllint"), "-d", "{extends: default, rules: {line-length: {max: 120}, document-start: disable, truthy: {check-keys: false}}}", *map(str, files)],
        capture_output=True, text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr
