"""Static checks of the Kubernetes manifests in admin/kubernetes (no cluster needed).

Every manifest is validated against the Kubernetes API schemas that kubernetes-validate
ships (strict: unknown fields fail), for K8S_VERSION and every newer version it has.
Then what a running cluster depends on: the DN StatefulSet, its headless Service and
the SN's DN_URLS name the same nodes in the same order (checked through the server's
own settings loader and DataNodes), the DNs get time to flush, probes hit /health on
the ports the settings give, pods run as non-root, and the files the settings name
are mounted. The checks run on the settings each pod would load: its environment
(env and envFrom ConfigMaps) over the override file it mounts over config.yml.
"""
import base64
import copy
import re
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import all_versions
from packaging.version import Version

from server.config import load_settings
from server.dn.app import max_body
from server.sn.auth import Authenticator
from server.sn.nodes import DataNodes

REPO = Path(__file__).resolve().parent.parent
KUBE_DIR = REPO / "admin" / "kubernetes"
CONFIG_YML = REPO / "admin" / "config" / "config.yml"     # baked into the image
KUSTOMIZATION = "kustomization.yaml"
# the oldest Kubernetes the manifests are checked against (README: Kubernetes)
K8S_VERSION = "1.30.0"
NAMESPACE = "h5cloud"
SN_COMMAND = ["python", "-m", "server.sn.main"]
DN_COMMAND = ["python", "-m", "server.dn.main"]
# server/dn/main.py: web.run_app(..., shutdown_timeout=30) waits this long for requests
# in flight before the DN's cleanup flushes (up to flush_timeout)
DN_SHUTDOWN_TIMEOUT = 30
MANIFESTS = sorted(p.name for p in KUBE_DIR.glob("*.yaml") if p.name != KUSTOMIZATION)


# --- loading -------------------------------------------------------------------

def load_docs(path: Path) -> list[dict]:
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def kustomization(directory: Path) -> dict:
    with open(directory / KUSTOMIZATION) as f:
        return yaml.safe_load(f)


class Manifests:
    """The objects `kubectl apply -k DIR` creates (the files under `resources:`)."""

    def __init__(self, directory: Path):
        self.dir = directory
        self.kust = kustomization(directory)
        self.objects = [d for name in self.kust["resources"]
                        for d in load_docs(directory / name)]

    def all(self, kind: str) -> list[dict]:
        return [o for o in self.objects if o.get("kind") == kind]

    def one(self, kind: str, name: str | None = None) -> dict:
        found = [o for o in self.all(kind) if name is None or o["metadata"]["name"] == name]
        assert len(found) == 1, (f"expected one {kind}{' ' + name if name else ''} in "
                                 f"{self.dir}, found {len(found)}")
        return found[0]

    def workload(self, command: list) -> tuple[dict, dict]:
        """(object, container) of the StatefulSet or Deployment running command."""
        found = [(o, c) for o in self.all("StatefulSet") + self.all("Deployment")
                 for c in o["spec"]["template"]["spec"]["containers"]
                 if c.get("command") == command]
        assert len(found) == 1, f"expected one container running {command}, found {len(found)}"
        return found[0]

    def sn(self):
        obj, container = self.workload(SN_COMMAND)
        assert obj["kind"] == "Deployment", "the SNs are a Deployment"
        return obj, container

    def dn(self):
        obj, container = self.workload(DN_COMMAND)
        assert obj["kind"] == "StatefulSet", "the DNs are a StatefulSet (stable names)"
        return obj, container

    # --- what a pod sees ---

    def _data(self, kind: str, name: str) -> dict:
        obj = self.one(kind, name)
        data = dict(obj.get("data") or {})
        if kind == "Secret":
            data = {k: base64.b64decode(v).decode() for k, v in data.items()}
            data.update(obj.get("stringData") or {})
        return data

    def env(self, workload: dict, container: dict, pod_name: str) -> dict:
        """The container's environment variables, as the kubelet would set them."""
        env = {}
        for source in container.get("envFrom") or []:
            ref = source.get("configMapRef") or source.get("secretRef")
            kind = "ConfigMap" if "configMapRef" in source else "Secret"
            if ref.get("optional") and not any(
                    o["metadata"]["name"] == ref["name"] for o in self.all(kind)):
                continue
            prefix = source.get("prefix", "")
            env.update({prefix + k: str(v) for k, v in self._data(kind, ref["name"]).items()})
        for var in container.get("env") or []:
            if "value" in var:
                env[var["name"]] = str(var["value"])
                continue
            source = var["valueFrom"]
            if "fieldRef" in source:
                path = source["fieldRef"]["fieldPath"]
                assert path == "metadata.name", f"{var['name']}: fieldRef {path} not handled here"
                env[var["name"]] = pod_name
                continue
            kind, ref = (("ConfigMap", source["configMapKeyRef"]) if "configMapKeyRef" in source
                         else ("Secret", source["secretKeyRef"]))
            data = self._data(kind, ref["name"])
            if ref["key"] in data:
                env[var["name"]] = str(data[ref["key"]])
            else:
                assert ref.get("optional"), \
                    f"{var['name']}: {kind} {ref['name']} lacks {ref['key']}"
        return env

    def mounted_file(self, workload: dict, container: dict, path: str) -> str:
        """The content of the file at path in the container, from a ConfigMap or Secret."""
        volumes = {v["name"]: v for v in workload["spec"]["template"]["spec"].get("volumes", [])}
        for mount in container.get("volumeMounts") or []:
            root = mount["mountPath"].rstrip("/") + "/"
            if not path.startswith(root):
                continue
            relative = path[len(root):]
            volume = volumes[mount["name"]]
            if "configMap" in volume:
                kind, source = "ConfigMap", volume["configMap"]
                data = self._data(kind, source["name"])
            elif "secret" in volume:
                kind, source = "Secret", volume["secret"]
                data = self._data(kind, source["secretName"])
            else:
                continue
            items = source.get("items") or [{"key": k, "path": k} for k in data]
            for item in items:
                if item["path"] == relative:
                    assert item["key"] in data, f"{path}: {kind} lacks key {item['key']}"
                    return data[item["key"]]
        raise AssertionError(f"{workload['metadata']['name']}: nothing mounted at {path}")

    def settings(self, workload: dict, container: dict, pod_name: str, tmp_path: Path,
                 **explicit):
        """The Settings the container's process loads (server.config.load_settings)."""
        env = self.env(workload, container, pod_name)
        override = tmp_path / f"{pod_name}-override.yml"
        if env.get("CONFIG_OVERRIDE_PATH"):
            override.write_text(self.mounted_file(workload, container,
                                                  env["CONFIG_OVERRIDE_PATH"]))
        return load_settings(env=env, config_file=CONFIG_YML, override_file=override,
                             **explicit)


@pytest.fixture(scope="module")
def kube():
    return Manifests(KUBE_DIR)


def container_port(container: dict, port) -> int:
    """A probe's or Service's port: a number, or the name of a container port."""
    if isinstance(port, int):
        return port
    named = {p["name"]: p["containerPort"] for p in container.get("ports", []) if "name" in p}
    assert port in named, f"{container['name']}: no container port named {port!r}"
    return named[port]


def parse_quantity(value) -> float:
    """Kubernetes quantities: '2Gi' -> 2147483648, '500m' -> 0.5, '1G' -> 1e9."""
    m = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", str(value))
    assert m, f"not a quantity: {value!r}"
    scale = {"": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
             "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    return float(m.group(1)) * scale[m.group(2)]


# --- the files -------------------------------------------------------------------

def test_manifests_exist():
    assert (KUBE_DIR / KUSTOMIZATION).is_file()
    assert MANIFESTS, f"no manifests in {KUBE_DIR}"


def test_kubernetes_version_is_shipped():
    shipped = all_versions()
    assert K8S_VERSION in shipped, (
        f"kubernetes-validate {kubernetes_validate.__version__} has no schemas for "
        f"Kubernetes {K8S_VERSION} (it has {shipped[0]}..{shipped[-1]})")


def checked_versions() -> list[str]:
    """K8S_VERSION and every newer Kubernetes kubernetes-validate has schemas for."""
    shipped = set(all_versions())      # each version has a plain and a strict folder
    return sorted((v for v in shipped if Version(v) >= Version(K8S_VERSION)), key=Version)


@pytest.mark.parametrize("name", MANIFESTS)
def test_manifest_is_valid(name):
    docs = load_docs(KUBE_DIR / name)
    assert docs, f"{name} holds no object"
    failures = {}                      # "Kind/name: where: what" -> versions it fails for
    for doc in docs:
        what = f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"
        for version in checked_versions():
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                where = ".".join(str(p) for p in e.path) or "(top)"
                failures.setdefault(f"{what}: {where}: {e.message}", []).append(version)
            except kubernetes_validate.SchemaNotFoundError as e:
                failures.setdefault(f"{what}: {e.message}", []).append(version)
    assert not failures, f"{name} does not validate (strict):\n" + "\n".join(
        f"  {problem}  [Kubernetes {', '.join(versions)}]"
        for problem, versions in failures.items())


def test_kustomization_lists_the_files():
    kust = kustomization(KUBE_DIR)
    assert kust["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kust["kind"] == "Kustomization"
    listed = list(kust.get("resources") or []) + [
        p["path"] for p in kust.get("patches") or [] if "path" in p]
    for name in listed:
        assert (KUBE_DIR / name).is_file(), f"{KUSTOMIZATION} lists {name}, which is missing"
    # a file not listed is optional, and kustomization.yaml says so (a comment naming it)
    text = (KUBE_DIR / KUSTOMIZATION).read_text()
    comments = "\n".join(ln for ln in text.splitlines() if ln.lstrip().startswith("#"))
    for name in MANIFESTS:
        assert name in listed or name in comments, (
            f"{name} is neither listed in {KUSTOMIZATION} nor named there as optional")


def test_namespace(kube):
    """One Namespace, first (so `kubectl apply -f` creates it before the rest); every
    other object in it."""
    assert kube.objects[0]["kind"] == "Namespace"
    assert kube.objects[0]["metadata"]["name"] == NAMESPACE
    for name in MANIFESTS:
        for doc in load_docs(KUBE_DIR / name):
            if doc["kind"] != "Namespace":
                assert doc["metadata"].get("namespace") == NAMESPACE, (
                    f"{name}: {doc['kind']}/{doc['metadata']['name']} is not in {NAMESPACE}")


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (kustomize) not installed")
def test_kustomize_builds(tmp_path):
    """`kubectl kustomize` renders the listed files, and with the optional files enabled
    the IRSA patch lands on the ServiceAccount and the autoscaler is added."""
    def build(directory):
        out = subprocess.run(["kubectl", "kustomize", str(directory)], capture_output=True,
                             text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return [d for d in yaml.safe_load_all(out.stdout) if d]

    built = build(KUBE_DIR)
    expected = Manifests(KUBE_DIR).objects
    assert sorted((d["kind"], d["metadata"]["name"]) for d in built) == \
        sorted((d["kind"], d["metadata"]["name"]) for d in expected)
    for doc in built:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)

    copy_dir = tmp_path / "kubernetes"
    shutil.copytree(KUBE_DIR, copy_dir)
    kust = kustomization(copy_dir)
    kust["resources"] = list(kust["resources"]) + ["hpa.yaml"]
    kust["patches"] = [{"path": "irsa-serviceaccount.yaml"}]
    (copy_dir / KUSTOMIZATION).write_text(yaml.safe_dump(kust))
    built = build(copy_dir)
    account = [d for d in built if d["kind"] == "ServiceAccount"]
    assert len(account) == 1
    assert "eks.amazonaws.com/role-arn" in account[0]["metadata"]["annotations"]
    assert account[0]["automountServiceAccountToken"] is True
    assert [d for d in built if d["kind"] == "HorizontalPodAutoscaler"]


# --- the DNs the SN expects --------------------------------------------------------

def expected_dn_urls(kube: Manifests) -> list[str]:
    """http://<statefulset>-<i>.<headless service>:<port> for each ordinal, after
    checking that the headless Service gives the StatefulSet's pods those names."""
    sts, container = kube.dn()
    name, spec = sts["metadata"]["name"], sts["spec"]
    service = kube.one("Service", spec["serviceName"])
    assert service["metadata"].get("namespace") == sts["metadata"].get("namespace")
    assert service["spec"].get("clusterIP") == "None", "the DN Service must be headless"
    assert service["spec"].get("publishNotReadyAddresses") is True, \
        "DN names must resolve while the DNs start"
    labels = spec["template"]["metadata"]["labels"]
    selector = service["spec"]["selector"]
    assert selector.items() <= labels.items(), "the DN Service does not select the DN pods"
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    assert spec.get("podManagementPolicy") == "Parallel"
    assert len(container["ports"]) == 1, "the DN container has one port"
    port = container["ports"][0]["containerPort"]
    service_ports = [p for p in service["spec"]["ports"] if p["port"] == port]
    assert service_ports, f"the DN Service has no port {port}"
    assert container_port(container, service_ports[0].get("targetPort", port)) == port
    return [f"http://{name}-{i}.{spec['serviceName']}:{port}" for i in range(spec["replicas"])]


def sn_dn_urls(kube: Manifests) -> str:
    deployment, container = kube.sn()
    env = kube.env(deployment, container, "h5cloud-sn-pod")
    assert "DN_URLS" in env, "the SN has no DN_URLS (env or ConfigMap)"
    return env["DN_URLS"]


def check_dn_urls(kube: Manifests, tmp_path: Path):
    expected = expected_dn_urls(kube)
    raw = sn_dn_urls(kube)
    assert [u.strip() for u in raw.split(",")] == expected, (
        f"the SN's DN_URLS\n  {raw}\ndo not name the StatefulSet's pods in ordinal order\n  "
        + ",".join(expected))
    # the SN's own settings loader and node list make the same of it
    deployment, container = kube.sn()
    settings = kube.settings(deployment, container, "h5cloud-sn-pod", tmp_path)
    assert settings.dn_urls == expected
    nodes = DataNodes(settings.dn_urls)
    assert nodes.ids == [f"dn-{i + 1:03d}" for i in range(len(expected))]
    sts, _ = kube.dn()
    for ordinal, (node_id, url) in enumerate(zip(nodes.ids, nodes.urls)):
        assert url == expected[ordinal], f"{node_id} is not pod {ordinal}"
        assert url.startswith(f"http://{sts['metadata']['name']}-{ordinal}."), (node_id, url)


def test_dn_urls_name_the_statefulset_pods(kube, tmp_path):
    check_dn_urls(kube, tmp_path)


@pytest.mark.parametrize("change", ["more replicas", "fewer replicas", "reordered",
                                    "other service"])
def test_dn_urls_check_catches_a_mismatch(kube, tmp_path, change):
    """The check above fails when the StatefulSet and DN_URLS drift apart."""
    broken = copy.deepcopy(kube)
    sts, _ = broken.dn()
    _, container = broken.sn()
    env = {v["name"]: v for v in container["env"]}
    if change == "more replicas":
        sts["spec"]["replicas"] += 1
    elif change == "fewer replicas":
        sts["spec"]["replicas"] -= 1
    elif change == "reordered":
        urls = env["DN_URLS"]["value"].split(",")
        env["DN_URLS"]["value"] = ",".join(urls[1:] + urls[:1])
    else:
        sts["spec"]["serviceName"] = "elsewhere"
        broken.objects.append({**broken.one("Service", "h5cloud-dn"),
                               "metadata": {"name": "elsewhere", "namespace": NAMESPACE}})
    with pytest.raises(AssertionError):
        check_dn_urls(broken, tmp_path)


def test_dn_urls_port_is_the_dn_port(kube, tmp_path):
    sts, container = kube.dn()
    settings = kube.settings(sts, container, f"{sts['metadata']['name']}-0", tmp_path)
    assert container_port(container, "http") == settings.dn_port, (
        f"the DN container port is not DN_PORT ({settings.dn_port})")
    assert all(u.endswith(f":{settings.dn_port}") for u in expected_dn_urls(kube))


# --- the workloads -------------------------------------------------------------------

def test_sn_replicas(kube):
    deployment, _ = kube.sn()
    assert deployment["spec"]["replicas"] >= 2


def test_one_image(kube):
    (_, sn), (_, dn) = kube.sn(), kube.dn()
    assert sn["image"] == dn["image"]
    assert sn["image"].split("/")[-1].split(":")[0] == "h5cloud"


def test_dns_get_time_to_flush(kube, tmp_path):
    sts, container = kube.dn()
    settings = kube.settings(sts, container, f"{sts['metadata']['name']}-0", tmp_path)
    grace = sts["spec"]["template"]["spec"].get("terminationGracePeriodSeconds", 30)
    assert grace > settings.flush_timeout, (grace, settings.flush_timeout)
    assert grace > DN_SHUTDOWN_TIMEOUT + settings.flush_timeout, (
        f"terminationGracePeriodSeconds {grace} leaves no room for {DN_SHUTDOWN_TIMEOUT} s of "
        f"requests in flight and a {settings.flush_timeout:g} s flush")


@pytest.mark.parametrize("role", ["sn", "dn"])
def test_probes_hit_health(kube, tmp_path, role):
    workload, container = getattr(kube, role)()
    settings = kube.settings(workload, container, f"{workload['metadata']['name']}-0",
                             tmp_path)
    port = settings.sn_port if role == "sn" else settings.dn_port
    assert settings.bind_address == "0.0.0.0", "the server must listen on the pod's address"
    assert port in [p["containerPort"] for p in container["ports"]]
    for kind in ("readinessProbe", "livenessProbe"):
        probe = container.get(kind)
        assert probe, f"{role}: no {kind}"
        assert probe["httpGet"]["path"] == "/health", (role, kind)
        assert container_port(container, probe["httpGet"]["port"]) == port, (role, kind)
    # /health is 503 while not ready (the SN: until every DN has answered): liveness is patient
    liveness = container["livenessProbe"]
    patience = liveness.get("periodSeconds", 10) * liveness.get("failureThreshold", 3)
    assert patience >= 60, f"{role}: liveness gives up after {patience} s"


@pytest.mark.parametrize("role", ["sn", "dn"])
def test_runs_as_non_root(kube, role):
    workload, container = getattr(kube, role)()
    pod = workload["spec"]["template"]["spec"].get("securityContext") or {}
    ctx = {**pod, **(container.get("securityContext") or {})}
    assert ctx.get("runAsNonRoot") is True
    assert ctx.get("runAsUser", 1000) != 0
    assert ctx.get("allowPrivilegeEscalation") is False
    if ctx.get("readOnlyRootFilesystem"):
        mounts = [m["mountPath"] for m in container.get("volumeMounts") or []]
        assert "/tmp" in mounts, "a read-only root file system needs a writable /tmp"


@pytest.mark.parametrize("role", ["sn", "dn"])
def test_resources(kube, role):
    _, container = getattr(kube, role)()
    resources = container.get("resources") or {}
    for part in ("requests", "limits"):
        for what in ("cpu", "memory"):
            assert what in (resources.get(part) or {}), f"{role}: no {what} {part[:-1]}"
        assert parse_quantity(resources["requests"]["memory"]) <= \
            parse_quantity(resources["limits"]["memory"])


def test_dn_memory_holds_the_caches(kube, tmp_path):
    sts, container = kube.dn()
    settings = kube.settings(sts, container, f"{sts['metadata']['name']}-0", tmp_path)
    need = settings.chunk_mem_cache_size + settings.metadata_mem_cache_size + max_body(settings)
    limit = parse_quantity(container["resources"]["limits"]["memory"])
    assert limit > need, (f"DN memory limit {limit / 2**20:.0f} MiB is below its caches plus "
                          f"one largest request, {need / 2**20:.0f} MiB")


# --- settings, files, services --------------------------------------------------------

def test_sn_reads_users_and_groups(kube, tmp_path):
    """PASSWORD_FILE and GROUPS_FILE are mounted in the SN, and the SN's loader reads them."""
    deployment, container = kube.sn()
    settings = kube.settings(deployment, container, "h5cloud-sn-pod", tmp_path)
    assert settings.password_file and settings.groups_file
    files = {}
    for name in ("password_file", "groups_file"):
        files[name] = tmp_path / Path(getattr(settings, name)).name
        files[name].write_text(kube.mounted_file(deployment, container, getattr(settings, name)))
    auth = Authenticator(settings.replace(password_file=str(files["password_file"]),
                                          groups_file=str(files["groups_file"])))
    assert settings.admin_user in auth.passwords
    assert auth.groups_of, "the groups file names no group"


@pytest.mark.parametrize("role", ["sn", "dn"])
def test_storage_settings(kube, tmp_path, role):
    workload, container = getattr(kube, role)()
    settings = kube.settings(workload, container, f"{workload['metadata']['name']}-0",
                             tmp_path)
    assert settings.root_dir == "", "the manifests use S3 (no shared volume)"
    assert settings.bucket_name and settings.aws_s3_gateway.startswith("https://")
    # with IRSA the keys are deleted from the Secret: the references must be optional
    for var in container.get("env") or []:
        ref = (var.get("valueFrom") or {}).get("secretKeyRef")
        if ref and var["name"].startswith("AWS_"):
            assert ref.get("optional") is True, var["name"]
    assert settings.node_id == f"{workload['metadata']['name']}-0"


def test_sn_service(kube):
    deployment, container = kube.sn()
    services = [s for s in kube.all("Service") if s["spec"].get("clusterIP") != "None"]
    assert len(services) == 1
    service = services[0]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    port = service["spec"]["ports"][0]
    assert port["port"] == 80
    assert container_port(container, port["targetPort"]) == 5101


def test_pods_use_the_service_account(kube):
    names = {o["metadata"]["name"] for o in kube.all("ServiceAccount")}
    for role in ("sn", "dn"):
        workload, _ = getattr(kube, role)()
        assert workload["spec"]["template"]["spec"].get("serviceAccountName") in names


def test_optional_files_fit(kube):
    """The autoscaler scales the SN Deployment; the IRSA account is the pods' one."""
    deployment, _ = kube.sn()
    (hpa,) = load_docs(KUBE_DIR / "hpa.yaml")
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert hpa["spec"]["minReplicas"] >= 2
    (account,) = load_docs(KUBE_DIR / "irsa-serviceaccount.yaml")
    assert account["kind"] == "ServiceAccount"
    assert account["metadata"]["name"] == \
        deployment["spec"]["template"]["spec"]["serviceAccountName"]
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].startswith(
        "arn:aws:iam::")
