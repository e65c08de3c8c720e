"""tests/deploy/kustomize_subset.py, the kubectl-free renderer of the manifest tests: kustomize's
ConfigMap hash against upstream's own values, every rule of the subset against kubectl on a tree
that exercises them all (where kubectl is installed), the same tree's rendering pinned for
machines without kubectl, and a clear refusal of whatever lies outside the subset."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.kustomize_subset import (
    KustomizeSubsetError,
    build,
    config_map_hash,
    kubectl_build,
)

#: A base, a component and an overlay that use every rule of the subset: generated ConfigMaps
#: referenced from volumes, projected volumes, env and envFrom of a Deployment and a CronJob
#: (and a ConfigMap that is not generated, whose references stay), a replaced generated map,
#: images by tag, name and registry with port, a component whose patch merges containers, env,
#: volume mounts and volumes by key, replaces a container's args, deletes keys with null (and
#: drops the nulls of what it adds), adds a container after the base's images ran, a patch
#: file holding two patches, the namespace renaming the Namespace, and the legacy sort across
#: kinds. The data has characters Go's JSON escapes (<, >, &, \r) and a tab, quote, backslash
#: and non-ASCII letter, so the hash's encoding is exercised too.
TREE: dict[str, str] = {
    "base/kustomization.yaml": """\
resources: [app.yaml, static.yaml]
configMapGenerator:
  - name: settings
    files: [settings.conf, notes.txt]
    options:
      labels: {tier: web}
images:
  - name: busybox
    newTag: "1.36"
  - name: docker.io/library/nginx
    newName: mirror.example.org/nginx
  - name: registry.example.org:5000/tools
    newTag: v2
""",
    "base/settings.conf": 'a = "<b> & c"\r\npath = C:\\tmp\tdone\nname = Zoë\n',
    "base/notes.txt": "notes\n",
    "base/static.yaml": """\
apiVersion: v1
kind: ConfigMap
metadata: {name: static}
data: {k: v}
""",
    "base/app.yaml": """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      dnsPolicy: ClusterFirst
      initContainers:
        - name: init
          image: busybox:1.0
          envFrom: [{configMapRef: {name: settings}}]
      containers:
        - name: a
          image: busybox
          args: [serve]
          env:
            - {name: E1, value: "1"}
            - name: E2
              valueFrom: {configMapKeyRef: {name: settings, key: notes.txt}}
          volumeMounts: [{name: config, mountPath: /etc/web}]
        - name: b
          image: docker.io/library/nginx@sha256:0123abcd
          volumeMounts: [{name: both, mountPath: /etc/both}]
      volumes:
        - name: config
          configMap: {name: settings}
        - name: both
          projected:
            sources:
              - configMap: {name: settings}
              - configMap: {name: static}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: web}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: cleanup}
spec:
  schedule: "0 * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
            - name: cleanup
              image: registry.example.org:5000/tools@sha256:feed
              envFrom: [{configMapRef: {name: settings}}]
""",
    "component/kustomization.yaml": """\
apiVersion: kustomize.config.k8s.io/v1alpha1
kind: Component
resources: [pdb.yaml]
configMapGenerator:
  - name: extra
    files: [extra.json]
    options:
      disableNameSuffixHash: true
      labels: {x: "1"}
patches:
  - path: patch.yaml
""",
    "component/extra.json": '{"x": 1}\n',
    "component/pdb.yaml": """\
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web}
spec:
  maxUnavailable: 1
  selector: {matchLabels: {app: web}}
""",
    "component/patch.yaml": """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {patched: "yes"}
spec:
  template:
    spec:
      dnsPolicy: null
      notThere: null
      hostNetwork: true
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            - topologyKey: kubernetes.io/hostname
              labelSelector: {matchLabels: {app: web}}
      containers:
        - name: b
          env: [{name: B, value: b}]
        - name: sidecar
          image: busybox
          workingDir: null
          securityContext: {runAsUser: null, runAsNonRoot: true}
        - name: a
          args: [serve, --verbose]
          env:
            - {name: E3, value: "3"}
            - {name: E1, value: one}
          volumeMounts: [{name: extra, mountPath: /etc/extra}]
      volumes:
        - name: extra
          configMap: {name: extra}
---
apiVersion: v1
kind: Service
metadata:
  name: web
  labels: {patched: "yes"}
""",
    "overlay/kustomization.yaml": """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: site
resources:
  - namespace.yaml
  - ../base
components:
  - ../component
configMapGenerator:
  - name: settings
    behavior: replace
    files: [settings.conf]
    options:
      labels: {site: one}
images:
  - name: mirror.example.org/nginx
    newTag: "1.27"
""",
    "overlay/namespace.yaml": """\
apiVersion: v1
kind: Namespace
metadata: {name: placeholder}
""",
    "overlay/settings.conf": "site = one\n",
}


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode("utf-8"))  # bytes: keep the \r as it is
    return root


@pytest.mark.parametrize(
    ("config_map", "suffix"),
    [
        # kustomize api/hasher/hasher_test.go TestConfigMapHash: "empty data", "one key"
        ({"apiVersion": "v1", "kind": "ConfigMap"}, "6ct58987ht"),
        ({"apiVersion": "v1", "kind": "ConfigMap", "data": {"one": ""}}, "9g67k2htb6"),
        # kubernetes.io, "Declarative Management of Kubernetes Objects Using Kustomize": the
        # ConfigMap generated from application.properties is example-configmap-1-g4hk9g2ff8;
        # the name takes no part in the hash (see config_map_hash)
        (
            {
                "kind": "ConfigMap",
                "metadata": {"name": "example-configmap-1"},
                "data": {"application.properties": "FOO=Bar\n"},
            },
            "g4hk9g2ff8",
        ),
    ],
)
def test_config_map_hash_is_kustomizes(config_map: dict[str, Any], suffix: str) -> None:
    assert config_map_hash(config_map) == suffix


@pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="compares with kubectl, which is not installed"
)
@pytest.mark.parametrize("directory", ["base", "overlay"])
def test_the_tree_renders_as_kubectl_renders_it(tmp_path: Path, directory: str) -> None:
    """Runs only where kubectl is installed (it is the reference); everywhere else
    test_the_tree_renders_as_recorded_from_kubectl checks the same rendering, pinned."""
    root = write_tree(tmp_path, TREE)
    kubectl = shutil.which("kubectl")
    assert kubectl is not None
    assert build(root / directory) == kubectl_build(kubectl, root / directory)


def test_the_tree_renders_as_recorded_from_kubectl(tmp_path: Path) -> None:
    """What kubectl 1.32 (kustomize v5.5) printed for the overlay, as the parts that each rule
    decides; the comparison above keeps this in step with kubectl."""
    docs = build(write_tree(tmp_path, TREE) / "overlay")
    ids = [(d["kind"], d["metadata"]["name"], d["metadata"].get("namespace")) for d in docs]
    assert ids == [
        ("Namespace", "site", None),
        ("ServiceAccount", "web", "site"),
        ("ConfigMap", "extra", "site"),
        ("ConfigMap", "settings-2mhdfk6ct9", "site"),
        ("ConfigMap", "static", "site"),
        ("Service", "web", "site"),
        ("Deployment", "web", "site"),
        ("CronJob", "cleanup", "site"),
        ("PodDisruptionBudget", "web", "site"),
    ]
    by_name = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    settings = by_name[("ConfigMap", "settings-2mhdfk6ct9")]
    assert settings["metadata"]["labels"] == {"tier": "web", "site": "one"}
    assert settings["data"] == {"settings.conf": "site = one\n"}
    deployment = by_name[("Deployment", "web")]
    assert deployment["metadata"]["labels"] == {"app": "web", "patched": "yes"}
    pod = deployment["spec"]["template"]["spec"]
    assert "dnsPolicy" not in pod and "notThere" not in pod and pod["hostNetwork"] is True
    containers = {c["name"]: c for c in pod["containers"]}
    assert list(containers) == ["b", "sidecar", "a"]  # the patch's order, then the others
    assert containers["a"]["args"] == ["serve", "--verbose"]
    assert containers["a"]["image"] == "busybox:1.36"
    assert [e["name"] for e in containers["a"]["env"]] == ["E3", "E1", "E2"]
    assert containers["a"]["env"][1]["value"] == "one"
    assert containers["a"]["env"][2]["valueFrom"]["configMapKeyRef"]["name"] == (
        "settings-2mhdfk6ct9"
    )
    assert [m["mountPath"] for m in containers["a"]["volumeMounts"]] == ["/etc/extra", "/etc/web"]
    assert containers["b"]["image"] == "mirror.example.org/nginx:1.27"  # the digest goes
    assert containers["sidecar"]["image"] == "busybox"  # added after the base's images ran
    assert containers["sidecar"]["securityContext"] == {"runAsNonRoot": True}  # nulls dropped
    assert "workingDir" not in containers["sidecar"]
    assert pod["initContainers"][0]["image"] == "busybox:1.36"
    assert pod["initContainers"][0]["envFrom"][0]["configMapRef"]["name"] == "settings-2mhdfk6ct9"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert list(volumes) == ["extra", "config", "both"]
    assert volumes["config"]["configMap"]["name"] == "settings-2mhdfk6ct9"
    sources = [s["configMap"]["name"] for s in volumes["both"]["projected"]["sources"]]
    assert sources == ["settings-2mhdfk6ct9", "static"]
    cleanup = by_name[("CronJob", "cleanup")]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert cleanup["containers"][0]["image"] == "registry.example.org:5000/tools:v2"
    assert cleanup["containers"][0]["envFrom"][0]["configMapRef"]["name"] == ("settings-2mhdfk6ct9")
    assert by_name[("Service", "web")]["metadata"]["labels"] == {"patched": "yes"}

    base = build(tmp_path / "base")
    (generated,) = [d for d in base if d["metadata"]["name"].startswith("settings-")]
    assert generated["metadata"]["name"] == "settings-khc5tbm5k2"
    assert generated["data"]["settings.conf"] == TREE["base/settings.conf"]


def test_a_broken_reference_to_the_tree_is_refused(tmp_path: Path) -> None:
    """Missing pieces fail with the kustomization and the field that names them."""
    files = dict(TREE)
    files["overlay/kustomization.yaml"] = files["overlay/kustomization.yaml"].replace(
        "- ../component", "- ../missing"
    )
    with pytest.raises(KustomizeSubsetError, match=r"kustomization\.yaml: components\[0\]"):
        build(write_tree(tmp_path, files) / "overlay")


@pytest.mark.parametrize(
    ("kustomization", "extra", "field"),
    [
        # a transformer the subset does not implement
        ("resources: [a.yaml]\nnamePrefix: dev-\n", {}, "namePrefix"),
        ("resources: [a.yaml]\ncommonLabels: {a: b}\n", {}, "commonLabels"),
        # generator forms outside it
        (
            "configMapGenerator:\n  - name: c\n    literals: [a=b]\n",
            {},
            r"configMapGenerator\[0\]\.literals",
        ),
        (
            "configMapGenerator:\n  - name: c\n    files: [a.yaml]\n    behavior: merge\n",
            {},
            r"configMapGenerator\[0\]\.behavior: merge",
        ),
        (
            "configMapGenerator:\n  - name: c\n    files: [a.yaml]\n"
            "    options: {annotations: {a: b}}\n",
            {},
            r"configMapGenerator\[0\]\.options\.annotations",
        ),
        # a patch with a target, an image by digest
        (
            "resources: [a.yaml]\npatches:\n  - path: a.yaml\n    target: {kind: Service}\n",
            {},
            r"patches\[0\]\.target",
        ),
        (
            "resources: [a.yaml]\nimages:\n  - name: x\n    digest: sha256:00\n",
            {},
            r"images\[0\]\.digest",
        ),
        # a patch directive, a list the subset cannot merge, a kind it does not know
        (
            "resources: [a.yaml]\npatches:\n  - path: p.yaml\n",
            {"p.yaml": "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n$patch: delete\n"},
            r"p\.yaml: \$patch",
        ),
        (
            "resources: [a.yaml]\npatches:\n  - path: p.yaml\n",
            {
                "p.yaml": "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n"
                "spec:\n  ports: [{port: 81}]\n"
            },
            r"p\.yaml: spec\.ports \(a list patched over a list\)",
        ),
        (
            "resources: [a.yaml, role.yaml]\nnamespace: n\n",
            {
                "role.yaml": "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\n"
                "metadata: {name: r}\n"
            },
            r"role\.yaml: kind: 'RoleBinding'",
        ),
    ],
)
def test_anything_outside_the_subset_is_refused(
    tmp_path: Path, kustomization: str, extra: dict[str, str], field: str
) -> None:
    service = "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  ports: [{port: 80}]\n"
    files = {"kustomization.yaml": kustomization, "a.yaml": service, **extra}
    with pytest.raises(KustomizeSubsetError, match=field):
        build(write_tree(tmp_path, files))


def test_what_kubectl_cannot_render_is_refused_too(tmp_path: Path) -> None:
    """kubectl fails on a file with control characters ("control characters are not allowed"):
    so does the subset, rather than render something kubectl never would."""
    files = {
        "kustomization.yaml": "configMapGenerator:\n  - name: c\n    files: [f.txt]\n",
        "f.txt": "a\bb\n",
    }
    with pytest.raises(KustomizeSubsetError, match=r"files\[0\]: control characters"):
        build(write_tree(tmp_path, files))
