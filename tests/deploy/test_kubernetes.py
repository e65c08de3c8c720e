"""deploy/kubernetes/: rendered with kustomize (``kubectl kustomize``), every object validated
offline against the Kubernetes OpenAPI schemas that ``kubernetes-validate`` ships (strict: an
unknown field is an error), and checked against what the super-peer itself expects (probe paths,
ports, the fleet's DNS name, the stop timeout, the image's user, the metrics the dashboard
plots). A broken copy of the manifests must fail the same validation.

Without kubectl (CI's Debian has none new enough) the same objects come from
tests/deploy/kustomize_subset.py, which a test holds to kubectl's output wherever kubectl is
installed; every rendering test also runs with kubectl taken off PATH, so both ways are
exercised here and none of these tests is skipped on a machine without kubectl but that one."""

from __future__ import annotations

import inspect
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from p2pml_py.apps.superpeer.config import parse_config
from p2pml_py.apps.superpeer.health import stale_after
from p2pml_py.apps.superpeer.metrics import render_metrics
from p2pml_py.apps.superpeer.supervisor import SuperPeer
from tests.deploy import kustomize_subset

ROOT = Path(__file__).resolve().parents[2]
KUBE = ROOT / "deploy" / "kubernetes"
#: The oldest Kubernetes the manifests claim (PodDisruptionBudget.unhealthyPodEvictionPolicy is
#: beta and on by default from 1.27) and the newest whose schemas kubernetes-validate ships.
VERSIONS = ("1.27.0", "1.37.0")
POD_IP = {"POD_IP": "192.0.2.10"}  # documentation address (RFC 5737): parsed, never contacted

#: ServiceMonitor is a custom resource: no Kubernetes schema has it. This is the part of the
#: prometheus-operator CRD (monitoring.coreos.com_servicemonitors.yaml, v0.84) that our file
#: uses -- required fields and value patterns as the CRD states them -- closed to other fields so
#: that a misspelt key fails here rather than being ignored by the API server.
_DURATION = (
    r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
)
SERVICE_MONITOR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "required": ["endpoints", "selector"],
            "additionalProperties": False,
            "properties": {
                "selector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "matchLabels": {
                            "type": "object",
                            "additionalProperties": {"type": "string"},
                        }
                    },
                },
                "endpoints": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string"},
                            "interval": {"type": "string", "pattern": _DURATION},
                            "scrapeTimeout": {"type": "string", "pattern": _DURATION},
                        },
                    },
                },
            },
        },
    },
}


#: Every kustomization a site can build (components are only applied through them).
KUSTOMIZATIONS = sorted(
    path.parent.relative_to(KUBE).as_posix()
    for path in KUBE.rglob("kustomization.yaml")
    if (yaml.safe_load(path.read_text()) or {}).get("kind", "Kustomization") == "Kustomization"
)


def render(directory: Path) -> list[dict[str, Any]]:
    """The objects kustomize builds from ``directory`` (no cluster, no network): kubectl's own
    kustomize where kubectl is on PATH, else the subset renderer, which
    test_the_subset_renderer_renders_what_kubectl_renders holds to kubectl's output."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return kustomize_subset.build(directory)
    return kustomize_subset.kubectl_build(kubectl, directory)


@pytest.fixture(params=["PATH", "PATH-without-kubectl"])
def kubectl_on_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs a rendering test twice: with PATH as it is (kubectl renders where it is
    installed), and with every directory holding a kubectl taken off PATH, as on CI's Debian
    machine, where render() uses the subset renderer and every object is still validated."""
    if request.param == "PATH-without-kubectl":
        directories = os.environ.get("PATH", "").split(os.pathsep)
        kept = [d for d in directories if not (Path(d) / "kubectl").exists()]
        monkeypatch.setenv("PATH", os.pathsep.join(kept))
        assert shutil.which("kubectl") is None


@pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="kubectl, the reference, is not installed"
)
@pytest.mark.parametrize("directory", KUSTOMIZATIONS)
def test_the_subset_renderer_renders_what_kubectl_renders(directory: str) -> None:
    """The same objects, in the same order, for every kustomization in deploy/kubernetes.

    Runs only where kubectl is installed: it is the one test of this file that cannot run
    without kubectl. The validation tests run everywhere (on the subset's objects when kubectl
    is missing), and test_kustomize_subset.py pins the subset's rules without kubectl."""
    kubectl = shutil.which("kubectl")
    assert kubectl is not None
    assert kustomize_subset.build(KUBE / directory) == kustomize_subset.kubectl_build(
        kubectl, KUBE / directory
    )


def test_every_kustomization_is_validated() -> None:
    """The validation tests below name their directories (they check per-site details);
    a new overlay must be added to them."""
    assert KUSTOMIZATIONS == ["base", "overlays/example"]


def validate(doc: dict[str, Any]) -> None:
    """Raise if ``doc`` is not a valid object of its kind, for every version in VERSIONS."""
    if doc.get("kind") == "ServiceMonitor":
        jsonschema.validate(doc, SERVICE_MONITOR_SCHEMA)
        return
    for version in VERSIONS:
        kubernetes_validate.validate(doc, version, strict=True)


def by_kind(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out = {doc["kind"]: doc for doc in docs}
    assert len(out) == len(docs) or {d["kind"] for d in docs} == {"ConfigMap"} | set(out)
    return out


def config_maps(docs: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    return (doc for doc in docs if doc["kind"] == "ConfigMap")


@pytest.mark.usefixtures("kubectl_on_path")
@pytest.mark.parametrize("directory", ["base", "overlays/example"])
def test_rendered_manifests_are_valid_objects(directory: str) -> None:
    docs = render(KUBE / directory)
    kinds = sorted(doc["kind"] for doc in docs)
    expected = ["ConfigMap", "PodDisruptionBudget", "Service", "StatefulSet"]
    if directory == "overlays/example":
        expected += ["ConfigMap", "Namespace", "ServiceMonitor"]
    assert kinds == sorted(expected)
    for doc in docs:
        validate(doc)


def test_base_resources_validate_as_written() -> None:
    """Without a renderer too: the base's resources are complete objects before kustomize
    adds the generated ConfigMap's name hash and the image."""
    kustomization = yaml.safe_load((KUBE / "base" / "kustomization.yaml").read_text())
    for name in kustomization["resources"]:
        for doc in yaml.safe_load_all((KUBE / "base" / name).read_text()):
            validate(doc)


def _container(statefulset: dict[str, Any]) -> dict[str, Any]:
    containers = statefulset["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    result: dict[str, Any] = containers[0]
    return result


@pytest.mark.usefixtures("kubectl_on_path")
@pytest.mark.parametrize("directory", ["base", "overlays/example"])
def test_manifests_agree_with_the_superpeer(directory: str) -> None:
    docs = render(KUBE / directory)
    kinds = by_kind(docs)
    statefulset, service, pdb = kinds["StatefulSet"], kinds["Service"], kinds["PodDisruptionBudget"]
    pod = statefulset["spec"]["template"]["spec"]
    container = _container(statefulset)
    labels = statefulset["spec"]["template"]["metadata"]["labels"]
    # The image each directory names (an overlay's images entry must match the base's result).
    expected_image = {
        "base": "localhost/p2pml-superpeer:dev",
        "overlays/example": "registry.example.org/p2pml-superpeer:0.1.0",
    }[directory]
    assert container["image"] == expected_image

    # The configuration every member reads: the generated ConfigMap the pod mounts.
    (config_map,) = [c for c in config_maps(docs) if "superpeer.toml" in c.get("data", {})]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["config"]["configMap"]["name"] == config_map["metadata"]["name"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    args = container["args"]
    assert args[args.index("--config") + 1] == mounts["config"] + "/superpeer.toml"
    config = parse_config(config_map["data"]["superpeer.toml"], "superpeer.toml", environ=POD_IP)

    # Fleet membership: the headless Service's DNS name, this member's pod IP from the
    # downward API under the name [fleet] reads.
    assert service["spec"]["clusterIP"] == "None"
    assert statefulset["spec"]["serviceName"] == service["metadata"]["name"]
    assert config.fleet is not None and config.fleet.source == "dns"
    assert config.fleet.dns_name == service["metadata"]["name"]
    assert config.fleet.self_id == POD_IP["POD_IP"]
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    assert all(labels[k] == v for k, v in service["spec"]["selector"].items())
    assert all(labels[k] == v for k, v in pdb["spec"]["selector"]["matchLabels"].items())
    assert pdb["spec"]["maxUnavailable"] == 1
    assert all(stream.replicas == 2 for stream in config.streams)

    # Probes on the status port the configuration listens on, at the super-peer's paths.
    (port,) = container["ports"]
    assert port["containerPort"] == config.listen_port and config.listen_host == "0.0.0.0"
    assert service["spec"]["ports"][0]["targetPort"] == port["name"]
    probes = {k: container[k]["httpGet"] for k in ("startupProbe", "livenessProbe")}
    assert all(p == {"path": "/healthz", "port": port["name"]} for p in probes.values())
    readiness = container["readinessProbe"]
    assert readiness["httpGet"] == {"path": "/readyz", "port": port["name"]}
    # A worker counts as stuck after stale_after(stats_interval); the probe must not give up
    # on a member sooner than that.
    patience = readiness["periodSeconds"] * readiness["failureThreshold"]
    assert patience >= stale_after(config.stats_interval)

    # Stopping: the workers' "stopped" announces, bounded by SuperPeer's stop_timeout, fit in
    # the grace period before Kubernetes kills the pod.
    stop_timeout = inspect.signature(SuperPeer).parameters["stop_timeout"].default
    assert pod["terminationGracePeriodSeconds"] >= stop_timeout + 10

    # Sizing: one worker process per core of the limit, Guaranteed QoS.
    resources = container["resources"]
    assert resources["requests"] == resources["limits"]
    assert int(resources["limits"]["cpu"]) == config.workers

    # Non-root on a read-only root filesystem, as the image's own user.
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    uid = int(re.search(r"^USER (\d+)", dockerfile, re.MULTILINE).group(1))  # type: ignore[union-attr]
    assert f"--uid {uid} " in dockerfile
    security = pod["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] == uid
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert mounts["tmp"] == "/tmp"

    if directory == "overlays/example":
        # One member per node on the node's network, resolving the Service through the
        # cluster DNS, with the UDP ports the nodes' firewall opens.
        assert pod["hostNetwork"] is True and pod["dnsPolicy"] == "ClusterFirstWithHostNet"
        required = pod["affinity"]["podAntiAffinity"][
            "requiredDuringSchedulingIgnoredDuringExecution"
        ]
        assert required[0]["topologyKey"] == "kubernetes.io/hostname"
        assert all(s.ice_port_range == (40000, 40999) for s in config.streams)
        assert {d["metadata"]["namespace"] for d in docs if d["kind"] != "Namespace"} == {"p2pml"}
        monitor = kinds["ServiceMonitor"]
        assert monitor["spec"]["endpoints"][0]["port"] == port["name"]
        assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    else:
        assert "hostNetwork" not in pod


def test_dashboard_plots_only_metrics_the_superpeer_exports() -> None:
    path = KUBE / "components" / "monitoring" / "p2pml-superpeer-dashboard.json"
    dashboard = json.loads(path.read_text())
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    exprs = [t["expr"] for p in panels for t in p.get("targets", [])]
    used = {name for expr in exprs for name in re.findall(r"\bp2pml_superpeer_\w+", expr)}
    assert len(used) >= 15
    # Every family a fleet member can export (with no stream running, each still has its
    # HELP/TYPE lines), counters under their sample name too.
    text = (KUBE / "base" / "superpeer.toml").read_text()
    superpeer = SuperPeer(parse_config(text, "superpeer.toml", environ=POD_IP))
    exported: set[str] = set()
    for family in text_string_to_metric_families(render_metrics(superpeer).decode()):
        exported.add(family.name)
        if family.type == "counter":
            exported.add(family.name + "_total")
    assert used <= exported, sorted(used - exported)


def _broken_copy(tmp_path: Path, old: str, new: str) -> Path:
    copy = tmp_path / "kubernetes"
    shutil.copytree(KUBE, copy)
    target = copy / "base" / "statefulset.yaml"
    text = target.read_text()
    assert text.count(old) == 1
    target.write_text(text.replace(old, new))
    return copy


@pytest.mark.usefixtures("kubectl_on_path")
@pytest.mark.parametrize(
    ("old", "new", "complaint"),
    [
        # a wrong type
        ("terminationGracePeriodSeconds: 30", 'terminationGracePeriodSeconds: "30s"', "'30s'"),
        # a misspelt field: the API server would drop it silently (strict schemas refuse it)
        ("readinessProbe:", "readynessProbe:", "readynessProbe"),
        # a missing required field
        ("  serviceName: p2pml-superpeer\n", "", "serviceName"),
    ],
)
def test_a_broken_manifest_fails_validation(
    tmp_path: Path, old: str, new: str, complaint: str
) -> None:
    copy = _broken_copy(tmp_path, old, new)
    for directory in ("base", "overlays/example"):
        (statefulset,) = [d for d in render(copy / directory) if d["kind"] == "StatefulSet"]
        with pytest.raises(jsonschema.ValidationError, match=re.escape(complaint)):
            validate(statefulset)


@pytest.mark.usefixtures("kubectl_on_path")
def test_a_broken_service_monitor_fails_validation() -> None:
    (monitor,) = [d for d in render(KUBE / "overlays" / "example") if d["kind"] == "ServiceMonitor"]
    monitor["spec"]["endpoints"][0]["interval"] = "15 seconds"
    with pytest.raises(jsonschema.ValidationError, match="15 seconds"):
        validate(monitor)
