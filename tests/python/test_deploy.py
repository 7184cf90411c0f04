"""The deployment artefacts, checked against the code on every run: the Kubernetes manifests
(rendered by kustomize, validated against the Kubernetes schemas, then checked for what the
schemas cannot see) and the Dockerfile (its build context, toolchain and command line)."""

import json
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys
import time
import tomllib

import pytest
import yaml

from conftest import ROOT, TARGET, Process
from k8s_checks import (
    by_kind,
    check_containers_locked_down_with_real_flags,
    check_edge_sidecar_serves,
    check_relay_configuration_validates,
    check_relay_fits_together,
    free_port,
    validate_against_kubernetes_schemas,
)

K8S = ROOT / "k8s"
# What kustomize can render on its own (components render through the example that uses them).
RENDERABLE = ["base", "overlays/relay", "examples/app-with-edge"]
RELAY_HOST = "switchyard-relay.switchyard.svc.cluster.local"


def render(path):
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl (with its built-in kustomize) is needed to render k8s/"
    out = subprocess.run([kubectl, "kustomize", str(K8S / path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"kubectl kustomize k8s/{path} failed:\n{out.stderr}"
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


@pytest.mark.parametrize("path", RENDERABLE)
def test_manifests_render_and_match_the_kubernetes_schemas(path):
    validate_against_kubernetes_schemas(render(path), f"k8s/{path}")


def test_yaml_is_lint_clean():
    out = subprocess.run(
        [str(pathlib.Path(sys.executable).parent / "yamllint"), "-d", "{extends: default, rules: {line-length: {max: 120}, document-start: disable, truthy: {check-keys: false}}}", str(K8S)],
        capture_output=True, text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_switchyard_container_is_locked_down_and_uses_real_flags():
    for path in RENDERABLE:
        check_containers_locked_down_with_real_flags(by_kind(render(path), "Deployment"), f"k8s/{path}")


def test_relay_overlay_fits_together():
    check_relay_fits_together(render("overlays/relay"), render("examples/app-with-edge"))


def test_relay_configuration_in_the_overlay_validates(postgres, tmp_path):
    check_relay_configuration_validates(render("overlays/relay"), postgres, tmp_path)


def test_edge_sidecar_serves_with_its_rendered_configuration(tmp_path):
    check_edge_sidecar_serves(render("examples/app-with-edge"), tmp_path, RELAY_HOST)


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
