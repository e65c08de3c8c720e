"""Renders the part of kustomize that deploy/kubernetes uses, without kubectl.

Why it exists: the manifest tests validate the objects ``kubectl kustomize`` builds, and the CI
machine (Debian 12) has no kubectl new enough -- Debian's ``kubernetes-client`` is 1.20, whose
built-in kustomize predates ``components``. ``build()`` renders the same objects from the same
files, and refuses (:class:`KustomizeSubsetError`, naming the field) everything it does not
implement, so that a manifest change outside the subset fails loudly instead of rendering
something kubectl would not. tests/deploy/test_kubernetes.py holds it to kubectl's output for
every kustomization in deploy/kubernetes wherever kubectl is installed, and
tests/deploy/test_kustomize_subset.py does the same for a tree that exercises every rule below.

The subset, with the kustomize v5.5 rules it follows (kubectl 1.32 bundles v5.5; paths are in
sigs.k8s.io/kustomize):

* ``resources``: YAML files inside the kustomization's directory, and directories holding a
  ``kustomization.yaml`` of kind Kustomization (built on their own, then added).
* ``components``: directories of kind Component, applied to the objects accumulated so far.
* ``configMapGenerator`` entries with ``name``, ``files``, ``behavior`` (create or replace) and
  ``options`` (``labels``, ``disableNameSuffixHash``).
* ``patches`` entries with only ``path``: strategic-merge patches found by apiVersion, kind and
  name (``api/internal/builtins/PatchTransformer.go``).
* ``namespace`` and ``images`` (``name``, ``newName``, ``newTag``).

Order (``api/internal/target/kusttarget.go``, ``accumulateTarget``): a kustomization's resources,
then its own generators, then its components, then its transformers -- patches, namespace,
images, in that order (``kusttarget_configplugin.go``). Name-suffix hashes are added once, at the
end of the top-level build, then the references to the renamed ConfigMaps are rewritten
(``makeCustomizedResMap``), then the objects are sorted in kustomize's legacy order
(``api/krusty/kustomizer.go``, ``applySortOrder``).

Every resource must be of a kind listed in :data:`NAMESPACED_KINDS` or :data:`CLUSTER_KINDS`:
the namespace transformer and the ConfigMap name references depend on the kind, and for a kind
outside those tables the subset cannot tell what kustomize would do with it.
"""

from __future__ import annotations

import functools
import hashlib
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

Obj = dict[str, Any]


class KustomizeSubsetError(ValueError):
    """A kustomization, resource or patch uses something this renderer does not implement."""


KUSTOMIZATION_API = {
    "Kustomization": "kustomize.config.k8s.io/v1beta1",
    "Component": "kustomize.config.k8s.io/v1alpha1",
}
KUSTOMIZATION_FIELDS = frozenset(
    {"apiVersion", "kind", "resources", "components", "patches", "configMapGenerator"}
    | {"images", "namespace"}
)
GENERATOR_FIELDS = frozenset({"name", "files", "behavior", "options"})
GENERATOR_OPTIONS = frozenset({"labels", "disableNameSuffixHash"})
IMAGE_FIELDS = frozenset({"name", "newName", "newTag"})
PATCH_FIELDS = frozenset({"path"})

#: Where the kinds that have a pod template keep its spec: the places kustomize's images
#: transformer and its ConfigMap name references reach
#: (``api/internal/konfig/builtinpluginconsts/namereference.go``).
POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "PodTemplate": ("template", "spec"),
    "Deployment": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
#: Kinds that get ``metadata.namespace`` and refer to other objects only through pod specs (or
#: not at all). ServiceMonitor is a custom resource: kustomize treats a kind its built-in schema
#: does not know as namespaced.
NAMESPACED_KINDS = frozenset(POD_SPEC_PATHS) | {
    "ConfigMap",
    "Secret",
    "Service",
    "ServiceAccount",
    "PersistentVolumeClaim",
    "PodDisruptionBudget",
    "ServiceMonitor",
}
#: Cluster-scoped kinds. The namespace transformer renames a ``v1`` Namespace to the
#: kustomization's namespace (``builtinpluginconsts/namespace.go``: ``metadata/name`` of kind
#: Namespace; ``api/filters/namespace/namespace.go`` keeps it for apiVersion v1 only).
CLUSTER_KINDS = frozenset({"Namespace"})

#: Lists that a strategic-merge patch merges element by element, with their merge key, as the
#: Kubernetes OpenAPI schema that kustomize reads declares them (``x-kubernetes-patch-merge-key``),
#: relative to a pod spec ("[]" stands for any element). A patch list over an existing list
#: anywhere else is refused: kustomize replaces some such lists and merges others
#: (``kyaml/yaml/walk/associative_sequence.go``), and the subset does not carry the schema.
POD_SPEC_MERGE_KEYS: dict[tuple[str, ...], str] = {
    ("containers",): "name",
    ("initContainers",): "name",
    ("volumes",): "name",
    ("containers", "[]", "env"): "name",
    ("initContainers", "[]", "env"): "name",
    ("containers", "[]", "volumeMounts"): "mountPath",
    ("initContainers", "[]", "volumeMounts"): "mountPath",
}
#: Lists the schema declares atomic (no patch strategy), relative to a pod spec: a patch
#: replaces them whole.
POD_SPEC_ATOMIC_LISTS = frozenset(
    (containers, "[]", field)
    for containers in ("containers", "initContainers")
    for field in ("command", "args")
)

#: The legacy sort order (``api/internal/builtins/SortOrderTransformer.go``).
ORDER_FIRST = (
    "Namespace",
    "ResourceQuota",
    "StorageClass",
    "CustomResourceDefinition",
    "ServiceAccount",
    "PodSecurityPolicy",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
    "ConfigMap",
    "Secret",
    "Endpoints",
    "Service",
    "LimitRange",
    "PriorityClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "Deployment",
    "StatefulSet",
    "CronJob",
    "PodDisruptionBudget",
)
ORDER_LAST = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")


@dataclass
class _Resource:
    obj: Obj
    source: str  # the file (or generator) it came from, for error messages
    hash_suffix: bool = False  # a generated ConfigMap whose name gets the content hash

    @property
    def api_version(self) -> str:
        return str(self.obj["apiVersion"])

    @property
    def kind(self) -> str:
        return str(self.obj["kind"])

    @property
    def name(self) -> str:
        return str(self.obj["metadata"]["name"])

    @property
    def namespace(self) -> str:
        return str(self.obj["metadata"].get("namespace") or "")

    def is_(self, api_version: str, kind: str, name: str, namespace: str) -> bool:
        return (self.api_version, self.kind, self.name) == (api_version, kind, name) and (
            _same_namespace(self.namespace, namespace)
        )


def _same_namespace(a: str, b: str) -> bool:
    """kustomize's ``IsNsEquals``: no namespace and "default" are the same one."""
    return (a or "default") == (b or "default")


def build(directory: Path) -> list[Obj]:
    """The objects ``kubectl kustomize directory`` prints, in the same order."""
    resources = _accumulate(directory.resolve(), [], "Kustomization")
    renamed: dict[tuple[str, str], str] = {}
    for res in resources:
        if res.hash_suffix:
            new_name = f"{res.name}-{config_map_hash(res.obj)}"
            renamed[(res.namespace or "default", res.name)] = new_name
            res.obj["metadata"]["name"] = new_name
    for res in resources:
        _rename_config_map_references(res, renamed)
    resources.sort(key=functools.cmp_to_key(_legacy_compare))
    return [res.obj for res in resources]


def kubectl_build(kubectl: str, directory: Path) -> list[Obj]:
    """What ``kubectl kustomize directory`` prints, parsed: the reference :func:`build` is
    held to (offline: kustomize needs no cluster for local files)."""
    result = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=60
    )
    if result.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {directory}: {result.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


# -- kustomization files ---------------------------------------------------------------------


def _refuse(where: Path | str, field: str, why: str) -> KustomizeSubsetError:
    return KustomizeSubsetError(f"{where}: {field}: {why}")


def _outside(where: Path | str, field: str) -> KustomizeSubsetError:
    return _refuse(
        where,
        field,
        "outside the kustomize subset that tests/deploy/kustomize_subset.py renders "
        "(extend the subset, or keep the manifests inside it)",
    )


def _load_kustomization(directory: Path, expected_kind: str) -> tuple[Path, Obj]:
    path = directory / "kustomization.yaml"
    if not path.is_file():
        raise _refuse(directory, "kustomization.yaml", "missing (the only file name read)")
    kustomization = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(kustomization, dict):
        raise _refuse(path, "(top level)", "not a mapping")
    for field in kustomization:
        if field not in KUSTOMIZATION_FIELDS:
            raise _outside(path, str(field))
    kind = kustomization.get("kind", "Kustomization")
    if kind not in KUSTOMIZATION_API:
        raise _refuse(path, "kind", f"{kind!r} is neither Kustomization nor Component")
    if kind != expected_kind:
        listed = "components" if expected_kind == "Component" else "resources"
        raise _refuse(path, "kind", f"a {kind} cannot be listed under {listed}")
    api_version = kustomization.get("apiVersion", KUSTOMIZATION_API[kind])
    if api_version != KUSTOMIZATION_API[kind]:
        raise _refuse(path, "apiVersion", f"{api_version!r} is not {KUSTOMIZATION_API[kind]}")
    return path, kustomization


def _entries(where: Path, kustomization: Obj, field: str) -> list[Any]:
    entries = kustomization.get(field) or []
    if not isinstance(entries, list):
        raise _refuse(where, field, "not a list")
    return entries


def _mapping(where: Path, at: str, entry: Any, allowed: frozenset[str]) -> Obj:
    if not isinstance(entry, dict):
        raise _refuse(where, at, "not a mapping")
    for field in entry:
        if field not in allowed:
            raise _outside(where, f"{at}.{field}")
    return entry


def _string(where: Path, at: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise _refuse(where, at, f"{value!r} is not a non-empty string (quote it)")
    return value


def _file_in(directory: Path, where: Path, at: str, entry: Any) -> Path:
    """A file named relative to the kustomization, inside its directory: kustomize's loader
    refuses files outside the kustomization root (only bases may be elsewhere)."""
    path = (directory / _string(where, at, entry)).resolve()
    if not path.is_relative_to(directory):
        raise _refuse(where, at, f"{entry!r} is outside {directory}")
    if not path.is_file():
        raise _refuse(where, at, f"no file {entry!r}")
    return path


def _accumulate(directory: Path, resources: list[_Resource], kind: str) -> list[_Resource]:
    where, kustomization = _load_kustomization(directory, kind)
    for i, entry in enumerate(_entries(where, kustomization, "resources")):
        at = f"resources[{i}]"
        if "://" in _string(where, at, entry) or entry.startswith("github.com/"):
            raise _refuse(where, at, f"{entry!r}: remote resources are outside the subset")
        path = (directory / entry).resolve()
        if path.is_dir():
            for res in _accumulate(path, [], "Kustomization"):
                _add(resources, res)
        else:
            for res in _read_resources(_file_in(directory, where, at, entry)):
                _add(resources, res)
    _generate(directory, where, kustomization, resources)
    for i, entry in enumerate(_entries(where, kustomization, "components")):
        path = (directory / _string(where, f"components[{i}]", entry)).resolve()
        if not path.is_dir():
            raise _refuse(where, f"components[{i}]", f"no directory {entry!r}")
        resources = _accumulate(path, resources, "Component")
    _patch(directory, where, kustomization, resources)
    _set_namespace(where, kustomization, resources)
    _set_images(where, kustomization, resources)
    return resources


def _read_resources(path: Path) -> Iterator[_Resource]:
    for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
        if doc is None:
            continue
        if not isinstance(doc, dict) or not isinstance(doc.get("metadata"), dict):
            raise _refuse(path, "metadata", "a resource must be a mapping with metadata")
        kind = doc.get("kind")
        if not isinstance(kind, str) or kind not in NAMESPACED_KINDS | CLUSTER_KINDS:
            raise _refuse(
                path,
                "kind",
                f"{kind!r} is in neither NAMESPACED_KINDS nor CLUSTER_KINDS of the subset "
                "(whether kustomize sets its namespace or rewrites references in it is unknown)",
            )
        _string(path, "apiVersion", doc.get("apiVersion"))
        _string(path, "metadata.name", doc["metadata"].get("name"))
        yield _Resource(doc, str(path))


def _add(resources: list[_Resource], res: _Resource) -> None:
    """Append ``res``; kustomize refuses a second object with the same id (resWrangler.Append)."""
    for other in resources:
        if other.is_(res.api_version, res.kind, res.name, res.namespace):
            raise _refuse(res.source, "metadata.name", f"{res.kind} {res.name!r} exists already")
    resources.append(res)


# -- configMapGenerator ----------------------------------------------------------------------


def _printable(text: str) -> bool:
    """Whether the YAML emitter kubectl uses can write ``text``: it refuses control characters
    other than tab, line feed, carriage return and NEL ("control characters are not allowed")."""
    return not any(
        (ord(c) < 0x20 and c not in "\t\n\r")
        or (0x7F <= ord(c) <= 0x9F and c != "\x85")
        or c in "\ufffe\uffff"
        for c in text
    )


def _generate(directory: Path, where: Path, kustomization: Obj, resources: list[_Resource]) -> None:
    for i, entry in enumerate(_entries(where, kustomization, "configMapGenerator")):
        at = f"configMapGenerator[{i}]"
        entry = _mapping(where, at, entry, GENERATOR_FIELDS)
        name = _string(where, f"{at}.name", entry.get("name"))
        behavior = entry.get("behavior", "create")
        if behavior not in ("create", "replace"):
            raise _outside(where, f"{at}.behavior: {behavior}")
        options = _mapping(where, f"{at}.options", entry.get("options") or {}, GENERATOR_OPTIONS)
        labels = options.get("labels") or {}
        if not isinstance(labels, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
        ):
            raise _refuse(where, f"{at}.options.labels", "not a map of strings (quote values)")
        no_hash = options.get("disableNameSuffixHash", False)
        if not isinstance(no_hash, bool):
            raise _refuse(where, f"{at}.options.disableNameSuffixHash", "not true or false")
        files = entry.get("files")
        if not isinstance(files, list) or not files:
            raise _refuse(where, f"{at}.files", "a non-empty list of files is required")
        data: dict[str, str] = {}
        for j, file in enumerate(files):
            if "=" in _string(where, f"{at}.files[{j}]", file):
                raise _outside(where, f"{at}.files[{j}]: key=path")
            path = _file_in(directory, where, f"{at}.files[{j}]", file)
            if path.name in data:
                raise _refuse(where, f"{at}.files[{j}]", f"key {path.name!r} twice")
            try:
                # bytes, not read_text(): kustomize keeps carriage returns as they are
                data[path.name] = path.read_bytes().decode("utf-8")
            except UnicodeDecodeError:
                raise _outside(where, f"{at}.files[{j}]: not UTF-8 (binaryData)") from None
            if not _printable(data[path.name]):
                raise _refuse(where, f"{at}.files[{j}]", "control characters: kubectl refuses it")
        metadata: Obj = {"name": name}
        if labels:
            metadata["labels"] = dict(labels)
        res = _Resource(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data},
            f"{where} {at}",
            hash_suffix=not no_hash,
        )
        if behavior == "create":
            _add(resources, res)
            continue
        # replace (resWrangler.appendReplaceOrMerge, Resource.CopyMergeMetaDataFieldsFrom): the
        # new data, labels and annotations merged over the old ones, the old name and namespace
        # and the old object's place; hashing follows the new entry's options.
        matches = [r for r in resources if r.is_("v1", "ConfigMap", name, "")]
        if len(matches) != 1:
            raise _refuse(where, f"{at}.behavior", f"no ConfigMap {name!r} to replace")
        old = matches[0]
        for field in ("labels", "annotations"):
            merged = {**old.obj["metadata"].get(field, {}), **metadata.get(field, {})}
            if merged:
                metadata[field] = merged
        if old.namespace:
            metadata["namespace"] = old.namespace
        resources[resources.index(old)] = res


def _go_json_string(text: str) -> str:
    """``text`` as Go's encoding/json writes it: HTML-safe (<, >, & escaped), U+2028/U+2029
    escaped, short escapes for \\b \\f \\n \\r \\t (Go 1.22 and later), \\u00XX for other control
    characters, everything else as is."""
    short = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r"}
    short |= {"\t": "\\t", "<": "\\u003c", ">": "\\u003e", "&": "\\u0026"}
    short |= {"\u2028": "\\u2028", "\u2029": "\\u2029"}
    out = (short.get(c) or (f"\\u{ord(c):04x}" if c < " " else c) for c in text)
    return '"' + "".join(out) + '"'


def config_map_hash(config_map: Obj) -> str:
    """The name suffix kustomize gives a generated ConfigMap (``api/hasher/hasher.go``).

    It hashes the JSON of ``{"data": ..., "kind": "ConfigMap", "name": ...}`` (keys sorted, as
    Go's json.Marshal writes a map): sha256, the first 10 hex digits, with 0 1 3 a e mapped to
    g h k m t (``encode``, which kustomize copied from kubectl's hash package). The name is
    always empty: ``encodeConfigMap`` looks it up with ``yaml.Lookup("metadata/name")``, one
    field literally named "metadata/name" that no object has -- kustomize's own test expects
    ``"name":""`` (``TestEncodeConfigMap``). A ConfigMap without data hashes ``"data":""``.
    Generated maps never have binaryData, so it is left out.
    """
    data = config_map.get("data")
    encoded_data = (
        '""'
        if data is None
        else "{"
        + ",".join(f"{_go_json_string(k)}:{_go_json_string(data[k])}" for k in sorted(data))
        + "}"
    )
    encoded = '{"data":' + encoded_data + ',"kind":"ConfigMap","name":""}'
    digest = hashlib.sha256(encoded.encode("utf-8")).hexdigest()[:10]
    return digest.translate(str.maketrans("013ae", "ghkmt"))


# -- patches -----------------------------------------------------------------------------------


def _patch(directory: Path, where: Path, kustomization: Obj, resources: list[_Resource]) -> None:
    for i, entry in enumerate(_entries(where, kustomization, "patches")):
        at = f"patches[{i}]"
        entry = _mapping(where, at, entry, PATCH_FIELDS)
        path = _file_in(directory, where, f"{at}.path", entry.get("path"))
        docs = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
        if not docs:
            raise _refuse(where, f"{at}.path", f"{path} holds no patch")
        for doc in docs:
            if not isinstance(doc, dict) or not isinstance(doc.get("metadata"), dict):
                raise _outside(path, "a patch that is not a strategic-merge patch")
            target_id = (
                _string(path, "apiVersion", doc.get("apiVersion")),
                _string(path, "kind", doc.get("kind")),
                _string(path, "metadata.name", doc["metadata"].get("name")),
                str(doc["metadata"].get("namespace") or ""),
            )
            targets = [r for r in resources if r.is_(*target_id)]
            if len(targets) != 1:
                raise _refuse(where, f"{at}.path", f"no resource matches {path.name}")
            target = targets[0]
            pod_spec = POD_SPEC_PATHS.get(target.kind)
            merged = _merge_map(target.obj, doc, (), _Patching(path, pod_spec))
            # Resource.ApplySmPatch: a patch never changes the kind, name or namespace
            merged["kind"] = target.kind
            merged["metadata"]["name"] = target.name
            merged["metadata"].pop("namespace", None)
            if target.namespace:
                merged["metadata"]["namespace"] = target.namespace
            target.obj = merged


@dataclass(frozen=True)
class _Patching:
    file: Path
    pod_spec: tuple[str, ...] | None

    def in_pod_spec(self, path: tuple[str, ...]) -> tuple[str, ...] | None:
        if self.pod_spec is None or path[: len(self.pod_spec)] != self.pod_spec:
            return None
        return path[len(self.pod_spec) :]


def _dotted(path: tuple[str, ...]) -> str:
    return ".".join(path).replace(".[]", "[]") or "(top level)"


def _merge(dest: Any, patch: Any, path: tuple[str, ...], patching: _Patching) -> Any:
    """kyaml's merge2 with kustomize's options, for what the subset allows: maps merge key by
    key, a null deletes the key, lists with a known merge key merge element by element, any
    other value replaces the old one."""
    if isinstance(patch, dict):
        if dest is not None and not isinstance(dest, dict):
            raise _refuse(patching.file, _dotted(path), "a map over a value that is not one")
        return _merge_map(dest, patch, path, patching)
    if isinstance(patch, list):
        if dest is not None and not isinstance(dest, list):
            raise _refuse(patching.file, _dotted(path), "a list over a value that is not one")
        return _merge_list(dest, patch, path, patching)
    if isinstance(dest, dict | list):
        raise _refuse(patching.file, _dotted(path), "a scalar over a map or list")
    return patch


def _merge_map(dest: Obj | None, patch: Obj, path: tuple[str, ...], patching: _Patching) -> Obj:
    out = dict(dest) if dest is not None else {}  # the patched object replaces the old one
    for key, value in patch.items():
        if not isinstance(key, str) or key.startswith("$"):
            raise _outside(patching.file, _dotted((*path, str(key))))
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merge(out.get(key), value, (*path, key), patching)
    return out


def _merge_list(
    dest: list[Any] | None, patch: list[Any], path: tuple[str, ...], patching: _Patching
) -> list[Any]:
    relative = patching.in_pod_spec(path)
    key = None if relative is None else POD_SPEC_MERGE_KEYS.get(relative)
    if key is None:
        if dest is not None and relative not in POD_SPEC_ATOMIC_LISTS:
            raise _outside(patching.file, f"{_dotted(path)} (a list patched over a list)")
        return [_merge(None, element, (*path, "[]"), patching) for element in patch]
    elements = {}
    for element in (*patch, *(dest or [])):
        if not isinstance(element, dict) or not isinstance(element.get(key), str):
            raise _refuse(patching.file, _dotted(path), f"an element without a {key}")
    for element in patch:
        if element[key] in elements:
            raise _refuse(patching.file, _dotted(path), f"{key} {element[key]!r} twice")
        elements[element[key]] = element
    old = {element[key]: element for element in dest or []}
    # The patch's elements first, in the patch's order, each merged into the old element of
    # the same key; then the old elements the patch does not name (merge2 with
    # ListIncreaseDirection Prepend, as patchstrategicmerge.Filter sets it).
    merged = [_merge(old.get(k), e, (*path, "[]"), patching) for k, e in elements.items()]
    return merged + [e for e in dest or [] if e[key] not in elements]


# -- namespace and images ----------------------------------------------------------------------


def _set_namespace(where: Path, kustomization: Obj, resources: list[_Resource]) -> None:
    if "namespace" not in kustomization:
        return
    namespace = _string(where, "namespace", kustomization["namespace"])
    for res in resources:
        if res.kind not in CLUSTER_KINDS:
            res.obj["metadata"]["namespace"] = namespace
        elif res.kind == "Namespace" and res.api_version == "v1":
            res.obj["metadata"]["name"] = namespace
    for i, res in enumerate(resources):
        if any(o.is_(res.api_version, res.kind, res.name, res.namespace) for o in resources[:i]):
            raise _refuse(where, "namespace", f"two {res.kind}s named {res.name!r} in it")


def _split_image(image: str) -> tuple[str, str, str]:
    """Name, tag and digest, as kustomize splits them (``api/internal/image/image.go``): a
    colon before the first slash belongs to the registry's port."""
    slash = image.find("/")
    offset = slash if slash > 0 else 0
    search = image[offset:]
    at, colon = search.find("@"), search.find(":")
    if at < 0 and colon < 0:
        return image, "", ""
    if at >= 0 and (colon < 0 or at < colon):
        return image[: offset + at], "", image[offset + at + 1 :]
    if at >= 0:
        return (
            image[: offset + colon],
            image[offset + colon + 1 : offset + at],
            image[offset + at + 1 :],
        )
    return image[: offset + colon], image[offset + colon + 1 :], ""


def _set_images(where: Path, kustomization: Obj, resources: list[_Resource]) -> None:
    for i, entry in enumerate(_entries(where, kustomization, "images")):
        at = f"images[{i}]"
        entry = _mapping(where, at, entry, IMAGE_FIELDS)
        name = _string(where, f"{at}.name", entry.get("name"))
        new_name = entry.get("newName")
        new_tag = entry.get("newTag")
        for field, value in (("newName", new_name), ("newTag", new_tag)):
            if value is not None:
                _string(where, f"{at}.{field}", value)
        # IsImageMatched: the name is used as a regular expression, as kustomize does
        pattern = re.compile("^" + name + r"(:[a-zA-Z0-9_.{}-]*)?(@sha256:[a-zA-Z0-9_.{}-]*)?$")
        for container in (c for res in resources for c in _containers(res.obj)):
            image = container.get("image")
            if not isinstance(image, str):
                raise _refuse(where, at, f"container {container.get('name')!r} has no image")
            if not pattern.match(image):
                continue
            base, tag, digest = _split_image(image)
            if new_name:
                base = new_name
            if new_tag:
                tag, digest = new_tag, ""
            container["image"] = (
                base + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")
            )


def _containers(node: Any) -> Iterator[Obj]:
    """Every element of every ``containers`` or ``initContainers`` list, at any depth: the
    images transformer's LegacyFilter (``api/filters/imagetag/legacy.go``); its field specs
    (``builtinpluginconsts/images.go``) name a subset of the same places, and applying the
    same image entry twice changes nothing more."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _containers(value)
            if key in ("containers", "initContainers") and isinstance(value, list):
                yield from (c for c in value if isinstance(c, dict))
    elif isinstance(node, list):
        for value in node:
            yield from _containers(value)


# -- name references and order -----------------------------------------------------------------


def _config_map_references(pod_spec: Obj) -> Iterator[Obj]:
    """The mappings whose ``name`` names a ConfigMap in a pod spec (namereference.go)."""
    for volume in pod_spec.get("volumes") or []:
        if isinstance(volume.get("configMap"), dict):
            yield volume["configMap"]
        for source in (volume.get("projected") or {}).get("sources") or []:
            if isinstance(source.get("configMap"), dict):
                yield source["configMap"]
    for container in (pod_spec.get("containers") or []) + (pod_spec.get("initContainers") or []):
        for env in container.get("env") or []:
            ref = (env.get("valueFrom") or {}).get("configMapKeyRef")
            if isinstance(ref, dict):
                yield ref
        for env_from in container.get("envFrom") or []:
            if isinstance(env_from.get("configMapRef"), dict):
                yield env_from["configMapRef"]


def _rename_config_map_references(res: _Resource, renamed: dict[tuple[str, str], str]) -> None:
    """Point references at the hashed names, within the referrer's namespace."""
    path = POD_SPEC_PATHS.get(res.kind)
    if path is None:
        return
    pod_spec: Any = res.obj
    for key in path:
        pod_spec = pod_spec.get(key) if isinstance(pod_spec, dict) else None
    if not isinstance(pod_spec, dict):
        return
    for ref in _config_map_references(pod_spec):
        new_name = renamed.get((res.namespace or "default", str(ref.get("name"))))
        if new_name is not None:
            ref["name"] = new_name


def _legacy_compare(a: _Resource, b: _Resource) -> int:
    def less(x: _Resource, y: _Resource) -> bool:
        gx, gy = _group_version_kind(x), _group_version_kind(y)
        if gx != gy:
            ox, oy = _type_order(x.kind), _type_order(y.kind)
            if ox != oy:
                return ox < oy
            ax, ay = "_".join(_or(gx, "~G", "~V", "~K")), "_".join(_or(gy, "~G", "~V", "~K"))
            if x.kind == y.kind == "Namespace" and (gx[0] == "" or gy[0] == ""):
                return ax > ay
            return ax < ay
        return _sort_id(x) < _sort_id(y)

    return -1 if less(a, b) else 1 if less(b, a) else 0


def _group_version_kind(res: _Resource) -> tuple[str, str, str]:
    """``ParseGroupVersion``: the group is what precedes the first slash."""
    group, _, version = res.api_version.partition("/")
    return (group, version, res.kind) if version else ("", group, res.kind)


def _or(values: tuple[str, ...], *defaults: str) -> list[str]:
    return [value or default for value, default in zip(values, defaults, strict=True)]


def _type_order(kind: str) -> int:
    if kind in ORDER_FIRST:
        return ORDER_FIRST.index(kind) - len(ORDER_FIRST)
    if kind in ORDER_LAST:
        return ORDER_LAST.index(kind) + 1
    return 0


def _sort_id(res: _Resource) -> str:
    """``legacyResIDSortString``: the ResId's ``Kind.version.group|namespace|name``."""
    group, version, kind = _group_version_kind(res)
    gvk = ".".join(_or((kind, version, group), "[noKind]", "[noVer]", "[noGrp]"))
    return "|".join([gvk, res.namespace or "~X", res.name or "~N"])
