"""deploy/gitops on the test control plane: Argo CD's CRDs (argo-cd v3.5.7) and Flux's (2.9:
source-controller and kustomize-controller v1.9.6 as released, helm-controller,
image-reflector-controller and image-automation-controller generated from their API modules)
installed from their Go modules, then every Argo CD and Flux object of deploy/gitops applied
server-side, as `kubectl apply -k` renders it, into argocd and flux-system. The API server
checks each against the CRD's schema and CEL rules with strict field validation, and the tests
read back what it stored.

No Argo CD or Flux controller runs here: what they would do with these objects is checked where
it can be without them (paths, references, the db-before-web split, the project's whitelist
against what ROAR renders), and the RoarApp health check runs in Lua 5.1 against statuses the
operator's own code computes. Reconciling from a git server is a later step (docs/gitops.md)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from gitopskit import install_gitops_crds, lua
from kubekit import KubeCluster, assert_stored

from manifests import helpers as h
from roar.operator import reconcile
from roar.operator.settings import OperatorSettings

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
GITOPS = REPO / "deploy" / "gitops"
ARGOCD_ENTRY_POINTS = ("project", "dev", "helm", "overlays")  # deploy/gitops/argocd/<dir>
CM_PATCH = GITOPS / "argocd" / "argocd-cm-patch.yaml"
HEALTH_KEY = "resource.customizations.health.app.example.com_RoarApp"
NAMESPACES = ("argocd", "flux-system")
MANAGER = "roar-gitops"
PLACEHOLDER = "https://git.example.com/roar.git"
Obj = dict[str, Any]

RESOURCES = {
    "AppProject": "appprojects.argoproj.io",
    "Application": "applications.argoproj.io",
    "ApplicationSet": "applicationsets.argoproj.io",
    "ConfigMap": "configmaps",
    "GitRepository": "gitrepositories.source.toolkit.fluxcd.io",
    "OCIRepository": "ocirepositories.source.toolkit.fluxcd.io",
    "Kustomization": "kustomizations.kustomize.toolkit.fluxcd.io",
    "HelmRelease": "helmreleases.helm.toolkit.fluxcd.io",
    "ImageRepository": "imagerepositories.image.toolkit.fluxcd.io",
    "ImagePolicy": "imagepolicies.image.toolkit.fluxcd.io",
    "ImageUpdateAutomation": "imageupdateautomations.image.toolkit.fluxcd.io",
}


def _kustomize(directory: Path) -> list[Obj]:
    return h.load_all(h.run([h.tool("kubectl"), "kustomize", str(directory)]).stdout)


def _ref(obj: Obj) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


def _argocd_objects(argocd: Path = GITOPS / "argocd") -> list[Obj]:
    """Every object of `kubectl apply -k deploy/gitops/argocd/<dir>`, each once."""
    seen: dict[tuple[str, str], Obj] = {}
    for entry in ARGOCD_ENTRY_POINTS:
        for obj in _kustomize(argocd / entry):
            assert seen.setdefault(_ref(obj), obj) == obj, f"{_ref(obj)} differs between dirs"
    return list(seen.values())


def _flux_objects() -> list[Obj]:
    return _kustomize(GITOPS / "flux")


def _cm_patch() -> Obj:
    (patch,) = h.load_all(CM_PATCH.read_text())
    return patch


@pytest.fixture(scope="module")
def kube_tools() -> None:
    h.ensure_tools()


@pytest.fixture(scope="module")
def objects(kube_tools: None) -> list[Obj]:
    return [*_argocd_objects(), _cm_patch(), *_flux_objects()]


def _list(objects: list[Obj]) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": objects})


@pytest.fixture(scope="module")
def applied(kube_cluster: KubeCluster, objects: list[Obj]) -> Iterator[dict[tuple[str, str], Obj]]:
    """The CRDs installed, every object applied server-side with strict validation, and what
    the API server stored, by (kind, name). Removed at the end (their finalizers first: no
    Argo CD controller is here to clear them). Few kubectl calls: each costs a second on a
    loaded machine."""
    install_gitops_crds(kube_cluster)
    namespaces = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
                  for ns in NAMESPACES]  # fmt: skip
    apply = ["apply", "--server-side", f"--field-manager={MANAGER}", "--validate=strict", "-f", "-"]
    kube_cluster.kubectl(*apply, input=_list(namespaces))
    kube_cluster.kubectl(*apply, input=_list(objects))
    sent = {(o["metadata"]["namespace"], *_ref(o)) for o in objects}
    kinds = ",".join(sorted({RESOURCES[o["kind"]] for o in objects}))
    stored = {
        _ref(obj): obj
        for obj in kube_cluster.kubectl_json("get", kinds, "--all-namespaces")["items"]
        if (obj["metadata"]["namespace"], *_ref(obj)) in sent
    }
    yield stored
    # The same objects without finalizers, by the same field manager: server-side apply drops
    # the fields it no longer sends.
    unfinalized = json.loads(_list(objects))
    for obj in unfinalized["items"]:
        obj["metadata"].pop("finalizers", None)
    kube_cluster.kubectl(*apply, input=json.dumps(unfinalized), check=False)
    kube_cluster.kubectl("delete", "namespace", *NAMESPACES, "--wait=false", check=False)


# --- the objects on the API server ----------------------------------------------------------


def test_every_file_is_applied(objects: list[Obj]) -> None:
    """Each YAML file of deploy/gitops is a kustomization or holds objects this module applies
    (dev/db and dev/web are kustomizations: test_flux_splits_dev_into_db_then_web)."""
    applied = {_ref(o) for o in objects}
    for path in GITOPS.rglob("*.yaml"):
        if path.name == "kustomization.yaml":
            continue
        for obj in h.load_all(path.read_text()):
            assert _ref(obj) in applied, f"{path.relative_to(REPO)}: {_ref(obj)} is not applied"


def test_the_crds_are_established(kube_cluster: KubeCluster, applied: dict[Any, Obj]) -> None:
    crds = kube_cluster.kubectl_json("get", "crd", *(r for r in RESOURCES.values() if "." in r))
    storage = {
        crd["metadata"]["name"]: next(v["name"] for v in crd["spec"]["versions"] if v["storage"])
        for crd in crds["items"]
    }
    assert storage == {
        "appprojects.argoproj.io": "v1alpha1", "applications.argoproj.io": "v1alpha1",
        "applicationsets.argoproj.io": "v1alpha1",
        "gitrepositories.source.toolkit.fluxcd.io": "v1",
        "ocirepositories.source.toolkit.fluxcd.io": "v1",
        "kustomizations.kustomize.toolkit.fluxcd.io": "v1",
        "helmreleases.helm.toolkit.fluxcd.io": "v2",
        "imagerepositories.image.toolkit.fluxcd.io": "v1",
        "imagepolicies.image.toolkit.fluxcd.io": "v1",
        "imageupdateautomations.image.toolkit.fluxcd.io": "v1",
    }  # fmt: skip


def test_every_object_is_stored_whole(objects: list[Obj], applied: dict[Any, Obj]) -> None:
    assert set(applied) == {_ref(o) for o in objects}
    for obj in objects:
        stored = applied[_ref(obj)]
        assert stored["apiVersion"] == obj["apiVersion"], _ref(obj)
        for part in ("spec", "data"):
            if part in obj:
                assert_stored(stored[part], obj[part], f"{_ref(obj)} {part}")
        for key in ("finalizers", "annotations"):
            if key in obj["metadata"]:
                assert_stored(stored["metadata"][key], obj["metadata"][key], f"{_ref(obj)} {key}")


def _refused(cluster: KubeCluster, bad: Obj, named: str) -> None:
    """The server refuses ``bad``, naming ``named`` (the object without the mistake is one of
    those the ``applied`` fixture applied)."""
    apply = ["apply", "--server-side", f"--field-manager={MANAGER}", "--validate=strict",
             "--dry-run=server", "-f", "-"]  # fmt: skip
    refused = cluster.kubectl(*apply, input=json.dumps(bad), check=False)
    assert refused.returncode != 0, f"accepted:\n{refused.stdout}"
    assert named in refused.stderr, refused.stderr


def _one(objects: list[Obj], kind: str, name: str) -> Obj:
    return json.loads(json.dumps(next(o for o in objects if _ref(o) == (kind, name))))


def test_the_api_server_refuses_mistakes(
    kube_cluster: KubeCluster, objects: list[Obj], applied: dict[Any, Obj]
) -> None:
    """The checks above can fail: the server refuses a mistake, naming the field (the same
    objects without it were accepted and stored)."""
    no_source = _one(objects, "Kustomization", "roar-dev-web")
    del no_source["spec"]["sourceRef"]
    _refused(kube_cluster, no_source, "spec.sourceRef: Required value")

    typo = _one(objects, "Application", "roar-dev")
    typo["spec"]["source"]["repoUrl"] = typo["spec"]["source"].pop("repoURL")
    _refused(kube_cluster, typo, ".spec.source.repoUrl: field not declared in schema")

    both = _one(objects, "HelmRelease", "roar")
    both["spec"]["chart"] = {"spec": {"chart": "roar", "sourceRef": {
        "kind": "HelmRepository", "name": "roar"}}}  # fmt: skip
    _refused(kube_cluster, both, "either chart or chartRef must be set")


# --- what the controllers would do with them, checked without them ---------------------------


def test_one_repository_url_per_tool(tmp_path: Path, objects: list[Obj]) -> None:
    """Argo CD: the project's sourceRepos is the one line to edit; every Application and the
    ApplicationSet follow it. Flux: every source reference names the one GitRepository."""
    argocd = tmp_path / "argocd"
    shutil.copytree(GITOPS / "argocd", argocd)
    project = argocd / "project" / "appproject.yaml"
    mine = "https://git.learner.test/me/roar.git"
    project.write_text(project.read_text().replace(PLACEHOLDER, mine))
    urls = set()
    for obj in _argocd_objects(argocd):
        spec = obj["spec"]
        if obj["kind"] == "Application":
            urls.add(spec["source"]["repoURL"])
        elif obj["kind"] == "ApplicationSet":
            urls.add(spec["template"]["spec"]["source"]["repoURL"])
        elif obj["kind"] == "AppProject":
            assert spec["sourceRepos"] == [mine]
    assert urls == {mine}

    flux = [o for o in objects if o["apiVersion"].split("/")[0].endswith("fluxcd.io")]
    (git_repo,) = [o for o in flux if o["kind"] == "GitRepository"]
    refs = [o["spec"]["sourceRef"] for o in flux if "sourceRef" in o["spec"]]
    assert refs and all(r == {"kind": "GitRepository", "name": "roar"} for r in refs)
    assert git_repo["metadata"]["name"] == "roar" and git_repo["spec"]["url"] == PLACEHOLDER


def _argocd_sources(objects: list[Obj]) -> list[tuple[str, str, str]]:
    """(path, destination namespace, project) of every Application, generated ones included."""
    out = []
    for obj in objects:
        if obj["kind"] == "Application":
            spec = obj["spec"]
            out.append((spec["source"]["path"], spec["destination"]["namespace"], spec["project"]))
        elif obj["kind"] == "ApplicationSet":
            template = json.dumps(obj["spec"]["template"])
            for element in obj["spec"]["generators"][0]["list"]["elements"]:
                rendered = template
                for key, value in element.items():
                    rendered = rendered.replace("{{." + key + "}}", value)
                assert "{{" not in rendered, rendered
                spec = json.loads(rendered)["spec"]
                out.append((spec["source"]["path"], spec["destination"]["namespace"],
                            spec["project"]))  # fmt: skip
    return out


def _helm_application_render(objects: list[Obj], tmp_path: Path) -> list[Obj]:
    """The chart as Argo CD renders it for roar-helm (`helm template` with the Application's
    release name, namespace and values), less the helm-test hooks Argo CD ignores."""
    (spec,) = [o["spec"] for o in objects if _ref(o) == ("Application", "roar-helm")]
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump(spec["source"]["helm"]["valuesObject"]))
    out = h.run([h.tool("helm"), "template", spec["source"]["helm"]["releaseName"],
                 str(REPO / spec["source"]["path"]), "--namespace",
                 spec["destination"]["namespace"], "--values", str(values)]).stdout  # fmt: skip
    return [o for o in h.load_all(out) if not h.is_helm_test(o)]


def test_the_project_allows_exactly_what_roar_deploys(
    objects: list[Obj], kustomize_tree: Path, tmp_path: Path
) -> None:
    """Argo CD syncs only the project's destinations and kinds: every Application's target and
    every kind the overlays and the chart (its GitOps mode; helm-test hooks are ignored by
    Argo CD) render is allowed, and nothing else."""
    (project,) = [o["spec"] for o in objects if o["kind"] == "AppProject"]
    sources = _argocd_sources(objects)
    namespaces = {ns for _, ns, _ in sources}
    assert {d["namespace"] for d in project["destinations"]} == namespaces
    assert {p for _, _, p in sources} == {"roar"}

    rendered: list[Obj] = []
    for path, _, _ in sources:
        assert (REPO / path).is_dir(), f"{path} does not exist"
        if path.startswith("deploy/kustomize/"):
            rendered += _kustomize(kustomize_tree / path.removeprefix("deploy/kustomize/"))
    rendered += _helm_application_render(objects, tmp_path)
    group = {o["kind"]: o["apiVersion"].rpartition("/")[0] for o in rendered}
    needed = {(group[k], k) for k in group if k != "Namespace"}
    allowed = {(r["group"], r["kind"]) for r in project["namespaceResourceWhitelist"]}
    assert allowed == needed, f"missing {needed - allowed}, not needed {allowed - needed}"
    cluster_wide = {(r["kind"], r.get("name")) for r in project["clusterResourceWhitelist"]}
    assert cluster_wide == {("Namespace", ns) for ns in namespaces}
    rendered_ns = {o["metadata"]["name"] for o in rendered if o["kind"] == "Namespace"}
    assert rendered_ns <= namespaces


def _split_tree(tmp_path: Path) -> Path:
    """deploy/kustomize (credential files from their examples) and deploy/gitops, side by side
    as in the repository, so the split overlays' relative paths resolve."""
    deploy = tmp_path / "deploy"
    h.prepare_kustomize_tree(deploy)
    shutil.copytree(GITOPS, deploy / "gitops")
    return deploy


IGNORED = {
    "kustomize.toolkit.fluxcd.io/ssa": "Ignore",
    "kustomize.toolkit.fluxcd.io/prune": "disabled",
}


def _ignored_by_flux(obj: Obj) -> bool:
    annotations = obj["metadata"].get("annotations") or {}
    return all(annotations.get(k) == v for k, v in IGNORED.items())


def test_flux_splits_dev_into_db_then_web(tmp_path: Path, objects: list[Obj]) -> None:
    """roar-dev-db and roar-dev-web together apply exactly the dev overlay, no object twice;
    the db part holds what web needs first (Namespace, Secret, the database), and web's
    Deployment reads the Secret the db part creates (web's build keeps a copy, for the name,
    that Flux neither applies nor prunes)."""
    flux = {o["metadata"]["name"]: o["spec"] for o in objects if o["kind"] == "Kustomization"}
    db, web = flux["roar-dev-db"], flux["roar-dev-web"]
    assert web["dependsOn"] == [{"name": "roar-dev-db"}] and "dependsOn" not in db
    assert web["wait"] is True and db["healthChecks"] and db["prune"] and web["prune"]

    deploy = _split_tree(tmp_path)
    parts = {name: _kustomize(deploy.parent / spec["path"]) for name, spec in flux.items()}
    whole = _kustomize(deploy / "kustomize" / "overlays" / "dev")

    def key(obj: Obj) -> str:
        return json.dumps(obj, sort_keys=True)

    db_objs = parts["roar-dev-db"]
    web_objs = [o for o in parts["roar-dev-web"] if not _ignored_by_flux(o)]
    assert sorted(map(key, db_objs + web_objs)) == sorted(map(key, whole))
    assert {_ref(o) for o in db_objs} >= {("Namespace", "roar-dev"), ("StatefulSet", "roar-db")}
    (secret,) = [o["metadata"]["name"] for o in db_objs if o["kind"] == "Secret"]
    ignored = [_ref(o) for o in parts["roar-dev-web"] if _ignored_by_flux(o)]
    assert ignored == [("Secret", secret)]
    (deployment,) = [o for o in web_objs if o["kind"] == "Deployment"]
    refs = re.findall(r'"secretKeyRef": \{"key": "[^"]+", "name": "([^"]+)"', key(deployment))
    assert refs and set(refs) == {secret}
    for check in db["healthChecks"]:
        assert (check["kind"], check["name"]) in {_ref(o) for o in db_objs}, check


def test_image_automation_markers_name_existing_policies(objects: list[Obj]) -> None:
    """Flux ignores a marker whose policy does not exist: every marker under the automation's
    update path names one of the ImagePolicies, and each overlay's marked newTag is its
    roar-web image's."""
    flux = objects
    policies = {f"{o['metadata']['namespace']}:{o['metadata']['name']}" for o in flux
                if o["kind"] == "ImagePolicy"}  # fmt: skip
    (automation,) = [o["spec"] for o in flux if o["kind"] == "ImageUpdateAutomation"]
    assert automation["update"]["strategy"] == "Setters"
    root = REPO / automation["update"]["path"]
    marked: dict[str, str] = {}
    for path in root.rglob("*.yaml"):
        for line in path.read_text().splitlines():
            if '"$imagepolicy"' in line:
                field, _, comment = line.partition("#")
                setter = json.loads(comment)["$imagepolicy"]
                policy, _, part = setter.rpartition(":")
                assert policy in policies and part == "tag", f"{path}: {setter}"
                marked[path.parent.name] = field.strip()
    assert set(marked) == {"dev", "prod"}
    for overlay, field in marked.items():
        text = (root / overlay / "kustomization.yaml").read_text()
        web = next(i for i in yaml.safe_load(text)["images"] if i["name"] == "roar-web")
        assert field == f"newTag: {web['newTag']}", overlay


# --- the Argo CD health check of the operator's RoarApp --------------------------------------

DEFAULTS = OperatorSettings(liveness_endpoint=None)
APP = {
    "apiVersion": "app.example.com/v1alpha1", "kind": "RoarApp",
    "metadata": {"name": "roarapp-sample", "namespace": "lab9", "uid": "u-1", "generation": 2},
    "spec": {"replicas": 3},
}  # fmt: skip
DB_READY = {"status": {"readyReplicas": 1}}


def _deployment(replicas: int, updated: int, ready: int, **status: Any) -> Obj:
    return {"metadata": {"generation": 4}, "status": {
        "observedGeneration": 4, "replicas": replicas, "updatedReplicas": updated,
        "readyReplicas": ready, **status}}  # fmt: skip


STUCK = {"conditions": [{
    "type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
    "message": 'ReplicaSet "roarapp-sample-web-5d" has timed out progressing.'}]}  # fmt: skip

#: name -> (what the operator observed, or an invalid-spec message; the health Argo CD shows)
SCENARIOS: dict[str, tuple[reconcile.Observed | str, str]] = {
    "ready": (reconcile.Observed(deployment=_deployment(3, 3, 3), statefulset=DB_READY),
              "Healthy"),
    "rolling out": (reconcile.Observed(deployment=_deployment(4, 1, 3), statefulset=DB_READY),
                    "Progressing"),
    "waiting for the database": (reconcile.Observed(deployment=_deployment(3, 3, 0)),
                                 "Progressing"),
    "deadline exceeded": (reconcile.Observed(deployment=_deployment(3, 1, 2, **STUCK),
                                             statefulset=DB_READY), "Degraded"),
    "apply failed": (reconcile.Observed(deployment=_deployment(3, 3, 3), statefulset=DB_READY,
                                        errors=[("web Deployment", "422 Unprocessable Entity")]),
                     "Degraded"),
    "invalid spec": ("spec.database: set managed or external, not both", "Degraded"),
}  # fmt: skip


def _status(observed: reconcile.Observed | str) -> Obj:
    if isinstance(observed, str):
        return reconcile.compute_status(APP, None, reconcile.Observed(), now="t", invalid=observed)
    spec = reconcile.to_roar_spec(APP, DEFAULTS)
    return reconcile.compute_status(APP, spec, observed, now="2026-01-01T00:00:00Z")


def _lua(value: Any) -> str:
    """A JSON value as a Lua 5.1 constructor (what Argo CD's decoder builds from the object)."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + "".join(chr(b) if 32 <= b < 127 and chr(b) not in '"\\' else f"\\{b:03d}"
                             for b in value.encode()) + '"'  # fmt: skip
    if isinstance(value, list):
        return "{" + ", ".join(_lua(v) for v in value) + "}"
    return "{" + ", ".join(f"[{_lua(k)}] = {_lua(v)}" for k, v in value.items()) + "}"


#: Runs the health script as Argo CD does: `obj` global, only the base and table libraries (no
#: string or math), and prints the returned status and message.
HARNESS = """
local chunk = assert(loadfile(arg[1]))
local env = {obj = %s, table = table}
for _, name in ipairs({"assert", "error", "ipairs", "next", "pairs", "pcall", "rawequal",
    "rawget", "rawset", "select", "setmetatable", "getmetatable", "tonumber", "tostring",
    "type", "unpack", "xpcall", "_VERSION"}) do env[name] = _G[name] end
setfenv(chunk, env)
local hs = chunk()
io.write(tostring(hs.status), "\\n", tostring(hs.message))
"""


def _health(obj: Obj, tmp_path: Path) -> tuple[str, str]:
    script = tmp_path / "health.lua"
    script.write_text(yaml.safe_load(CM_PATCH.read_text())["data"][HEALTH_KEY])
    harness = tmp_path / "harness.lua"
    harness.write_text(HARNESS % _lua(json.loads(json.dumps(obj))))
    run = subprocess.run([str(lua()), str(harness), str(script)], capture_output=True, text=True,
                         timeout=30)  # fmt: skip
    assert run.returncode == 0, run.stderr
    status, message = run.stdout.split("\n", 1)
    return status, message


def _describe(condition: Obj) -> str:
    return f"{condition['reason']}: {condition['message']}"


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_roarapp_health(scenario: str, tmp_path: Path) -> None:
    observed, health = SCENARIOS[scenario]
    status = _status(observed)
    conditions = {c["type"]: c for c in status["conditions"]}
    shown = conditions["Degraded" if health == "Degraded" else "Ready"]
    assert _health({**APP, "status": status}, tmp_path) == (health, _describe(shown))


def test_roarapp_health_waits_for_the_operator(tmp_path: Path) -> None:
    """A new RoarApp (no status yet), and one edited since the operator last wrote its status
    (generation 3, status of generation 2, still Ready): Progressing, not the old verdict."""
    assert _health(APP, tmp_path) == (
        "Progressing", "Waiting for the ROAR operator to report status")  # fmt: skip
    ready = _status(SCENARIOS["ready"][0])
    edited = {**APP, "metadata": {**APP["metadata"], "generation": 3}, "status": ready}
    assert _health(edited, tmp_path) == (
        "Progressing", "Waiting for the ROAR operator to observe generation 3")  # fmt: skip
