"""The deployment artefacts, checked against the code on every run: the Kubernetes manifests
(rendered by kustomize, validated against the Kubernetes schemas, then checked for what the
schemas cannot see) and the Dockerfile (its build context, toolchain and command line)."""

import json
import os
import pathlib
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request

import kubernetes_validate
import pytest
import yaml

from conftest import ROOT, TARGET, Process, switchyard_admin

K8S = ROOT / "k8s"
# What kustomize can render on its own (components render through the example that uses them).
RENDERABLE = ["base", "overlays/relay", "examples/app-with-edge"]
# The oldest Kubernetes with everything the manifests use (native sidecars, the preStop `sleep`
# action: 1.30 has both on by default) and the newest the validator knows.
KUBERNETES_VERSIONS = ["1.30.0", "1.37.0"]


def render(path):
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl (with its built-in kustomize) is needed to render k8s/"
    out = subprocess.run([kubectl, "kustomize", str(K8S / path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"kubectl kustomize k8s/{path} failed:\n{out.stderr}"
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


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


@pytest.mark.parametrize("path", RENDERABLE)
def test_manifests_render_and_match_the_kubernetes_schemas(path):
    docs = render(path)
    assert docs
    for version in KUBERNETES_VERSIONS:
        for doc in docs:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                pytest.fail(f"k8s/{path}: {doc['kind']} {doc['metadata']['name']} is invalid for Kubernetes {version}: {e.message} at {list(e.path)}")


def test_yaml_is_lint_clean():
    out = subprocess.run(
        [str(pathlib.Path(sys.executable).parent / "yamllint"), "-d", "{extends: default, rules: {line-length: {max: 120}, document-start: disable, truthy: {check-keys: false}}}", str(K8S)],
        capture_output=True, text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_switchyard_container_is_locked_down_and_uses_real_flags():
    flags = cli_flags()
    for path in RENDERABLE:
        for deployment in by_kind(render(path), "Deployment"):
            pod = deployment["spec"]["template"]["spec"]
            for c in all_containers(pod):
                sc = c.get("securityContext", {})
                assert sc.get("readOnlyRootFilesystem") is True, (path, c["name"])
                assert sc.get("allowPrivilegeEscalation") is False, (path, c["name"])
                assert sc.get("capabilities", {}).get("drop") == ["ALL"], (path, c["name"])
                assert pod.get("securityContext", {}).get("runAsNonRoot") or sc.get("runAsNonRoot"), (path, c["name"])
                assert {"requests", "limits"} <= set(c.get("resources", {})), (path, c["name"])
            ours = switchyard_containers(pod)
            # Every Deployment here runs switchyard (the app example as a sidecar): finding none
            # means the image name changed and the checks below would pass vacuously.
            assert ours, f"{path}: {deployment['metadata']['name']} has no switchyard container"
            assert any("--config-file" in c.get("args", []) for c in ours), f"{path}: no gateway container"
            for c in ours:
                used = {a.split("=")[0] for a in c.get("args", []) if a.startswith("--")}
                for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                    exec_ = c.get(probe, {}).get("exec")
                    if exec_:
                        used |= {a for a in exec_["command"] if a.startswith("--")}
                assert used <= flags, f"{path}: {c['name']} uses flags the binary does not have: {used - flags}"
                if "--config-file" in used:  # a gateway, not a one-off command such as migrations
                    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                        assert probe in c, (path, c["name"], probe)
                    for name in ("SWITCHYARD_DRAIN_TIMEOUT", "SWITCHYARD_CONFIG_POLL_INTERVAL"):
                        assert name in env_of(c), (path, c["name"], name)


def test_relay_overlay_fits_together():
    docs = render("overlays/relay")
    deployment = one(docs, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    pod = deployment["spec"]["template"]["spec"]
    (relay,) = pod["containers"]
    assert deployment["spec"]["replicas"] >= 2
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
    assert selects(one(docs, "PodDisruptionBudget")["spec"]["selector"], pod_labels)
    policy = one(docs, "NetworkPolicy")
    assert selects(policy["spec"]["podSelector"], pod_labels)
    assert policy["spec"]["policyTypes"] == ["Ingress"]

    # Only edges get in: the labels the edge-sidecar component gives its pods.
    edge = one(render("examples/app-with-edge"), "Deployment")
    edge_labels = edge["spec"]["template"]["metadata"]["labels"]
    (rule,) = policy["spec"]["ingress"]
    assert any(selects(peer["podSelector"], edge_labels) for peer in rule["from"]), "the policy must admit edge pods"
    assert not any(selects(peer["podSelector"], pod_labels) for peer in rule["from"]), "only edges, not every pod"
    assert rule["ports"][0]["port"] == relay["ports"][0]["containerPort"]

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
    config_map_name = volumes[volume_name]["configMap"]["name"]
    (config_map,) = [c for c in by_kind(docs, "ConfigMap") if c["metadata"]["name"] == config_map_name]
    file_name = config_path[len(mounts[volume_name]) + 1:]
    assert file_name in config_map["data"], f"{config_map_name} has no {file_name}"
    for name, text in config_map["data"].items():
        (directory / name).write_text(text)
    args[args.index("--config-file") + 1] = str(directory / file_name)
    return args


def test_relay_configuration_in_the_overlay_validates(postgres, tmp_path):
    docs = render("overlays/relay")
    deployment = one(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (relay,) = pod["containers"]
    # The key table comes from the init container, with the same database URL as the relay.
    (migrate,) = pod["initContainers"]
    assert migrate["args"] == ["--run-postgres-migrations"]
    assert env_of(migrate)["TENSORZERO_POSTGRES_URL"] == env_of(relay)["TENSORZERO_POSTGRES_URL"]
    switchyard_admin(postgres, *migrate["args"])
    args = config_of(docs, pod, relay, tmp_path)
    env = {**os.environ, "TENSORZERO_POSTGRES_URL": postgres.url, "RUST_LOG": "warn"}
    env.pop("TENSORZERO_VALKEY_URL", None)
    out = subprocess.run([str(TARGET / "switchyard"), *args, "--validate-config"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "configuration is valid" in out.stdout


def test_edge_sidecar_serves_with_its_rendered_configuration(tmp_path):
    docs = render("examples/app-with-edge")
    deployment = one(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (edge,) = switchyard_containers(pod)
    assert edge["restartPolicy"] == "Always", "a native sidecar outlives the app's containers"
    args = config_of(docs, pod, edge, tmp_path)
    assert args[args.index("--bind-address") + 1].startswith("127.0.0.1:"), "the edge listens on localhost only"
    port = free_port()
    args[args.index("--bind-address") + 1] = f"127.0.0.1:{port}"
    env = {**os.environ, "TENSORZERO_RELAY_API_KEY": "sk-t0-aaaaaaaaaaaa-" + "b" * 48}
    env.pop("TENSORZERO_GATEWAY_BIND_ADDRESS", None)
    for name, spec in env_of(edge).items():
        if "value" in spec:
            env[name] = spec["value"]
    gateway = Process([str(TARGET / "switchyard"), *args], tmp_path / "edge.log", env=env)
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
        assert "switchyard-relay.switchyard.svc.cluster.local" in failure.value.read().decode()
    finally:
        gateway.stop()


def dockerfile_instructions():
    text = (ROOT / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", text)
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def test_dockerfile_build_context_is_complete_and_buildable_by_cargo(tmp_path):
    instructions = dockerfile_instructions()
    stages = [i for i, (k, _) in enumerate(instructions) if k == "FROM"]
    assert len(stages) == 2, "a build stage and a runtime stage"
    build = instructions[stages[0]:stages[1]]
    args = {rest.split("=")[0]: rest.split("=")[1] for k, rest in instructions if k == "ARG" and "=" in rest}

    # The toolchain image is at least the workspace's rust-version.
    rust_version = args["RUST_VERSION"]
    manifest = tomllib.loads((ROOT / "Cargo.toml").read_text())
    needed = manifest["workspace"]["package"]["rust-version"]
    assert tuple(map(int, rust_version.split("."))) >= tuple(map(int, needed.split(".")[:2]))

    # Copy exactly what the build stage copies, then let cargo read the workspace there.
    context = tmp_path / "context"
    context.mkdir()
    for keyword, rest in build:
        if keyword == "COPY":
            *sources, dest = shlex.split(rest)
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: no such file in the tree"
                target = context / (source if dest.endswith("/") or dest == "./" else dest)
                if (ROOT / source).is_dir():
                    shutil.copytree(ROOT / source, target, ignore=shutil.ignore_patterns("target"))
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(ROOT / source, target)
    host = re.search(r"host: (\S+)", subprocess.run(["rustc", "-vV"], capture_output=True, text=True).stdout).group(1)
    metadata = subprocess.run(
        ["cargo", "metadata", "--locked", "--offline", "--format-version", "1", "--filter-platform", host],
        cwd=context, capture_output=True, text=True, timeout=120,
    )
    assert metadata.returncode == 0, f"cargo cannot read the workspace in the image's build context:\n{metadata.stderr}"
    packages = json.loads(metadata.stdout)["packages"]
    bins = {t["name"] for p in packages for t in p["targets"] if "bin" in t["kind"]}

    (run,) = [rest for k, rest in build if k == "RUN"]
    command = run.split("cargo ", 1)[1].split("&&")[0].split()
    assert command[0] == "build" and "--release" in command and "--locked" in command, command
    built = command[command.index("--bin") + 1]
    assert built in bins
    assert f"target/release/{built}" in run


def test_dockerfile_runtime_runs_the_binary_as_the_seed_does(tmp_path):
    instructions = dockerfile_instructions()
    runtime = instructions[[i for i, (k, _) in enumerate(instructions) if k == "FROM"][1]:]
    keywords = dict(runtime)
    user = keywords["USER"].split(":")[0]
    assert user.isdigit() and int(user) != 0, "a numeric non-root user (runAsNonRoot can check it)"
    assert keywords["EXPOSE"] == "3000"
    entrypoint = json.loads(keywords["ENTRYPOINT"])
    copied = [shlex.split(rest)[-1] for k, rest in runtime if k == "COPY"]
    assert entrypoint[0] in copied, "the entrypoint is the binary the image copies in"

    # The seed's relay: `command: --default-config`, on the image's port (moved to a free one).
    port = free_port()
    env = {**os.environ, "TENSORZERO_GATEWAY_BIND_ADDRESS": f"127.0.0.1:{port}"}
    gateway = Process([str(TARGET / "switchyard"), *entrypoint[1:], "--default-config"], tmp_path / "gw.log", env=env)
    try:
        gateway.wait_for("switchyard listening")
        healthcheck = json.loads(keywords["HEALTHCHECK"].split("CMD", 1)[1])
        healthcheck[0] = str(TARGET / "switchyard")
        healthcheck = [a.replace("127.0.0.1:3000", f"127.0.0.1:{port}") for a in healthcheck]
        assert subprocess.run(healthcheck, capture_output=True, timeout=10).returncode == 0
    finally:
        gateway.stop()
    # And the HEALTHCHECK fails when nothing answers.
    time.sleep(0.1)
    assert subprocess.run(healthcheck, capture_output=True, timeout=10).returncode == 1
