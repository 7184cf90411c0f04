"""Checks of rendered Kubernetes objects, shared by the kustomize manifests (test_deploy.py) and
the Helm chart (test_chart.py): whatever renders them, the objects must pass the same checks.
Each check takes the rendered documents (dicts) and asserts; the names say what is checked."""

import json
import os
import re
import shutil
import socket
import subprocess
import urllib.error
import urllib.request

import kubernetes_validate
import pytest

from conftest import ROOT, TARGET, Process, switchyard_admin

# The oldest Kubernetes with everything the manifests use (native sidecars, the preStop `sleep`
# action: 1.30 has both on by default) and the newest the validator knows (asked, so a newer
# kubernetes-validate moves the check forward).
KUBERNETES_VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]
# Custom resources of the Prometheus Operator: kubernetes-validate has no schemas for them; they
# are checked against the operator's CRD schemas instead (validate_custom_resources).
CUSTOM_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}


def by_kind(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def one(docs, kind):
    found = by_kind(docs, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def env_of(container):
    return {e["name"]: e for e in container.get("env", [])}


def seconds_env(container, name):
    return float(env_of(container)[name]["value"])


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def all_containers(pod_spec):
    return pod_spec.get("initContainers", []) + pod_spec["containers"]


def switchyard_containers(pod_spec):
    """The containers running the switchyard image (any registry, any tag)."""
    def repository(image):
        return image.split("@")[0].rsplit(":", 1)[0].rsplit("/", 1)[-1]
    return [c for c in all_containers(pod_spec) if repository(c["image"]) == "switchyard"]


def cli_flags():
    help_text = subprocess.run([str(TARGET / "switchyard"), "--help"], capture_output=True, text=True, check=True).stdout
    return set(re.findall(r"--[a-z][a-z0-9-]+", help_text))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def validate_custom_resources(docs):
    """Prometheus Operator objects against the schemas of the operator's CRDs (the
    @kubernetes-models/prometheus-operator validators, run by node; tests/run installs them).
    Returns the problems found, one line each."""
    node = shutil.which("node")
    assert node, "node is needed to validate the Prometheus Operator objects (tests/run installs it)"
    validator = ROOT / "tests/tools/crd-validate"
    assert (validator / "node_modules").is_dir(), "run `npm ci --prefix tests/tools/crd-validate` (tests/run does)"
    out = subprocess.run([node, str(validator / "validate.mjs")], input=json.dumps(docs), capture_output=True, text=True, timeout=60)
    assert out.returncode in (0, 1), out.stderr
    return out.stdout.splitlines()


def validate_against_kubernetes_schemas(docs, source):
    """Every object against the Kubernetes schemas (strict: unknown fields are errors), and the
    Prometheus Operator's objects against its CRDs' schemas."""
    assert docs, f"{source} rendered nothing"
    custom = [d for d in docs if d["kind"] in CUSTOM_KINDS]
    if custom:
        problems = validate_custom_resources(custom)
        assert not problems, f"{source}: " + "\n".join(problems)
    for version in KUBERNETES_VERSIONS:
        for doc in docs:
            if doc["kind"] in CUSTOM_KINDS:
                continue
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                pytest.fail(f"{source}: {doc['kind']} {doc['metadata']['name']} is invalid for Kubernetes {version}: {e.message} at {list(e.path)}")


def check_containers_locked_down_with_real_flags(deployments, source, gateway_required=True):
    """Restricted security contexts, requests and limits, flags the binary has, and probes and
    drain settings on every gateway container."""
    flags = cli_flags()
    for deployment in deployments:
        pod = deployment["spec"]["template"]["spec"]
        for c in all_containers(pod):
            sc = c.get("securityContext", {})
            assert sc.get("readOnlyRootFilesystem") is True, (source, c["name"])
            assert sc.get("allowPrivilegeEscalation") is False, (source, c["name"])
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], (source, c["name"])
            assert pod.get("securityContext", {}).get("runAsNonRoot") or sc.get("runAsNonRoot"), (source, c["name"])
            assert {"requests", "limits"} <= set(c.get("resources", {})), (source, c["name"])
        ours = switchyard_containers(pod)
        # Every Deployment here runs switchyard (the app example as a sidecar): finding none
        # means the image name changed and the checks below would pass vacuously.
        assert ours, f"{source}: {deployment['metadata']['name']} has no switchyard container"
        if gateway_required:
            assert any("--config-file" in c.get("args", []) for c in ours), f"{source}: no gateway container"
        for c in ours:
            used = {a.split("=")[0] for a in c.get("args", []) if a.startswith("--")}
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                exec_ = c.get(probe, {}).get("exec")
                if exec_:
                    used |= {a for a in exec_["command"] if a.startswith("--")}
            assert used <= flags, f"{source}: {c['name']} uses flags the binary does not have: {used - flags}"
            if "--config-file" in used:  # a gateway, not a one-off command such as migrations
                for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                    assert probe in c, (source, c["name"], probe)
                for name in ("SWITCHYARD_DRAIN_TIMEOUT", "SWITCHYARD_CONFIG_POLL_INTERVAL"):
                    assert name in env_of(c), (source, c["name"], name)


def check_relay_fits_together(docs, edge_docs):
    """The relay's objects find each other (selectors, ports, names), its grace period covers
    its drain, only edges get in, and secrets come by reference only."""
    deployment = one(docs, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    pod = deployment["spec"]["template"]["spec"]
    (relay,) = pod["containers"]
    assert selects(deployment["spec"]["selector"], pod_labels)

    # Probes: liveness and readiness are the separate endpoints, on the container's port.
    assert relay["livenessProbe"]["httpGet"]["path"] == "/live"
    assert relay["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert relay["startupProbe"]["httpGet"]["port"] == relay["ports"][0]["name"]

    # Shutdown: the grace period covers preStop + shutdown delay + drain.
    pre_stop = relay["lifecycle"]["preStop"]["sleep"]["seconds"]
    budget = pre_stop + seconds_env(relay, "SWITCHYARD_SHUTDOWN_DELAY") + seconds_env(relay, "SWITCHYARD_DRAIN_TIMEOUT")
    assert pod["terminationGracePeriodSeconds"] > budget, "the kubelet would kill draining streams"

    # The Service, the autoscaler, the disruption budget and the policy all find the relay pods.
    service = one(docs, "Service")
    assert all(pod_labels.get(k) == v for k, v in service["spec"]["selector"].items())
    assert service["spec"]["ports"][0]["targetPort"] in {p["name"] for p in relay["ports"]}
    hpa = one(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert hpa["spec"]["minReplicas"] >= 2
    assert deployment["spec"].get("replicas", hpa["spec"]["minReplicas"]) >= 2
    assert selects(one(docs, "PodDisruptionBudget")["spec"]["selector"], pod_labels)
    for constraint in pod.get("topologySpreadConstraints", []):
        assert selects(constraint["labelSelector"], pod_labels)
    policy = one(docs, "NetworkPolicy")
    assert selects(policy["spec"]["podSelector"], pod_labels)
    assert policy["spec"]["policyTypes"] == ["Ingress"]

    # Only edges get to the API port: the labels the edge sidecar gives its pods. (A rule for
    # Prometheus, when there is one, opens the metrics port alone.)
    edge = one(edge_docs, "Deployment")
    edge_labels = edge["spec"]["template"]["metadata"]["labels"]
    ports = {p["name"]: p["containerPort"] for p in relay["ports"]}
    (rule,) = [r for r in policy["spec"]["ingress"] if r["ports"][0]["port"] == ports["http"]]
    assert any(selects(peer.get("podSelector", {"matchLabels": {"-": "-"}}), edge_labels) for peer in rule["from"]), "the policy must admit edge pods"
    assert not any(selects(peer.get("podSelector", {"matchLabels": {"-": "-"}}), pod_labels) for peer in rule["from"]), "only edges, not every pod"
    for other in policy["spec"]["ingress"]:
        if other is not rule:
            assert [p["port"] for p in other["ports"]] == [ports["metrics"]], "other peers reach the metrics port only"

    # The metrics port (if any) is the one the flag binds, and the Service exposes it.
    args = relay["args"]
    if "--metrics-bind-address" in args:
        assert args[args.index("--metrics-bind-address") + 1] == f"0.0.0.0:{ports['metrics']}"
        assert "metrics" in {p["targetPort"] for p in service["spec"]["ports"]}

    # Secrets by reference only: provider keys and the Postgres/Valkey URLs.
    env = env_of(relay)
    for name in ("TENSORZERO_POSTGRES_URL", "TENSORZERO_VALKEY_URL"):
        assert "secretKeyRef" in env[name]["valueFrom"], name
    assert relay["envFrom"][0]["secretRef"]["name"]
    assert not by_kind(docs, "Secret"), "no secret values in the manifests"


def config_of(docs, pod, container, directory):
    """Writes the ConfigMap the container mounts into `directory`; returns the container's args
    with its config path pointing there."""
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    args = list(container["args"])
    config_path = args[args.index("--config-file") + 1]
    (volume_name,) = [n for n, p in mounts.items() if config_path.startswith(p + "/")]
    assert not any(m.get("subPath") for m in container["volumeMounts"] if m["name"] == volume_name), \
        "a subPath mount never sees ConfigMap updates: live reload needs the directory"
    config_map_name = volumes[volume_name]["configMap"]["name"]
    (config_map,) = [c for c in by_kind(docs, "ConfigMap") if c["metadata"]["name"] == config_map_name]
    file_name = config_path[len(mounts[volume_name]) + 1:]
    assert file_name in config_map["data"], f"{config_map_name} has no {file_name}"
    for name, text in config_map["data"].items():
        (directory / name).write_text(text)
    args[args.index("--config-file") + 1] = str(directory / file_name)
    return args


def check_relay_configuration_validates(docs, postgres, directory):
    """The init container migrates the relay's database, and the relay's rendered configuration
    passes `--validate-config` against it."""
    deployment = one(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (relay,) = pod["containers"]
    # The key table comes from the init container, with the same database URL as the relay.
    (migrate,) = pod["initContainers"]
    assert migrate["args"] == ["--run-postgres-migrations"]
    assert env_of(migrate)["TENSORZERO_POSTGRES_URL"] == env_of(relay)["TENSORZERO_POSTGRES_URL"]
    switchyard_admin(postgres, *migrate["args"])
    args = config_of(docs, pod, relay, directory)
    env = {**os.environ, "TENSORZERO_POSTGRES_URL": postgres.url, "RUST_LOG": "warn"}
    env.pop("TENSORZERO_VALKEY_URL", None)
    out = subprocess.run([str(TARGET / "switchyard"), *args, "--validate-config"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "configuration is valid" in out.stdout


def check_edge_sidecar_serves(docs, directory, relay_host):
    """The app's pod has the edge as a native sidecar; started with its rendered configuration
    and environment, it answers its own exec probes and fails a call as a relay outage should."""
    deployment = one(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (edge,) = switchyard_containers(pod)
    assert edge in pod.get("initContainers", []) and edge["restartPolicy"] == "Always", \
        "a native sidecar outlives the app's containers"
    args = config_of(docs, pod, edge, directory)
    assert args[args.index("--bind-address") + 1].startswith("127.0.0.1:"), "the edge listens on localhost only"
    port = free_port()
    args[args.index("--bind-address") + 1] = f"127.0.0.1:{port}"
    # The metrics port, on the pod's address (moved to a free port on loopback here).
    metrics_port = None
    if "--metrics-bind-address" in args:
        declared = {p["name"]: p["containerPort"] for p in edge.get("ports", [])}
        assert args[args.index("--metrics-bind-address") + 1] == f"0.0.0.0:{declared['edge-metrics']}"
        metrics_port = free_port()
        args[args.index("--metrics-bind-address") + 1] = f"127.0.0.1:{metrics_port}"
    env = {**os.environ, "TENSORZERO_RELAY_API_KEY": "sk-t0-aaaaaaaaaaaa-" + "b" * 48}
    env.pop("TENSORZERO_GATEWAY_BIND_ADDRESS", None)
    for name, spec in env_of(edge).items():
        if "value" in spec:
            env[name] = spec["value"]
    gateway = Process([str(TARGET / "switchyard"), *args], directory / "edge.log", env=env)
    try:
        gateway.wait_for("switchyard listening")
        # The sidecar's exec probes, as the kubelet runs them (with the port moved).
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            command = [a.replace("127.0.0.1:3000", f"127.0.0.1:{port}") for a in edge[probe]["exec"]["command"]]
            command[0] = str(TARGET / "switchyard")
            assert subprocess.run(command, capture_output=True, timeout=10).returncode == 0, probe
        # The relay is not running here: the function resolves, and the call fails as a relay
        # outage should (502 naming the relay), not as a configuration error.
        body = json.dumps({"function_name": "haiku", "input": {"messages": [{"role": "user", "content": "hi"}]}}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/inference", data=body, headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as failure:
            urllib.request.urlopen(request, timeout=30)
        assert failure.value.code == 502
        assert relay_host in failure.value.read().decode()
        if metrics_port:
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as r:
                assert b'switchyard_http_requests_total{route="/inference",method="POST",status="502"} 1' in r.read()
    finally:
        gateway.stop()
