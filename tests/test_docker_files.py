"""Static checks of the Docker files (no Docker engine needed).

The Dockerfile at the repo root and admin/docker/docker-compose.yml are parsed
and checked for what a running cluster depends on: the services and their node
ids, SIGTERM reaching python (exec form) with time to flush, the SN's port and
DN list, and COPY sources that exist.
"""
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
DOCKERFILE = REPO / "Dockerfile"
COMPOSE = REPO / "admin" / "docker" / "docker-compose.yml"
LAMBDA_DOCKERFILE = REPO / "Dockerfile.lambda"
DNS = [f"dn{i}" for i in range(1, 9)]


# --- compose -----------------------------------------------------------------

@pytest.fixture(scope="module")
def services():
    with open(COMPOSE) as f:
        doc = yaml.safe_load(f)          # anchors and << merges resolve here
    return doc["services"]


def _default(value: str) -> str:
    """The value of '${VAR:-default}' / '${VAR-default}' when VAR is unset."""
    def repl(m):
        return m.group(2) or ""
    return re.sub(r"\$\{(\w+)(?::?-([^}]*))?\}", repl, str(value))


def _seconds(duration) -> float:
    """Compose durations: '60s', '1m30s', '1h', or a plain number of seconds."""
    if isinstance(duration, (int, float)):
        return float(duration)
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|m|s|ms|us)?", str(duration).strip())
    scale = {"h": 3600, "m": 60, "s": 1, "": 1, "ms": 1e-3, "us": 1e-6}
    return sum(float(n) * scale[u] for n, u in parts)


def test_services_exist(services):
    assert {"sn", *DNS} <= set(services)


def test_every_service_is_complete(services):
    for name in ["sn", *DNS]:
        svc = services[name]
        assert svc.get("image") or svc.get("build"), name
        assert svc["build"]["context"] == "../..", name
        assert (COMPOSE.parent / svc["build"]["context"] / svc["build"].get(
            "dockerfile", "Dockerfile")).resolve() == DOCKERFILE
        assert isinstance(svc["command"], list), f"{name}: command must be exec form"
        assert isinstance(svc["environment"], dict) and svc["environment"], name


def test_commands_select_the_role(services):
    assert services["sn"]["command"] == ["python", "-m", "server.sn.main"]
    for name in DNS:
        assert services[name]["command"] == ["python", "-m", "server.dn.main"]


def test_dn_node_ids_are_distinct(services):
    ids = [services[name]["environment"]["NODE_ID"] for name in DNS]
    assert ids == [f"dn-{i:03d}" for i in range(1, 9)]
    assert len(set(ids)) == len(ids)
    for name in DNS:
        assert _default(services[name]["environment"]["DN_PORT"]) == "6101"


def test_sn_dn_urls_default_to_first_four(services):
    urls = _default(services["sn"]["environment"]["DN_URLS"]).split(",")
    assert urls == [f"http://dn{i}:6101" for i in range(1, 5)]
    assert "${DN_URLS" in services["sn"]["environment"]["DN_URLS"]   # overridable


def test_stop_grace_period_lets_dns_flush(services):
    for name in ["sn", *DNS]:
        svc = services[name]
        assert _seconds(svc["stop_grace_period"]) >= 30, name
        assert svc.get("stop_signal", "SIGTERM") == "SIGTERM", name


def test_sn_publishes_5101(services):
    ports = [_default(p) for p in services["sn"]["ports"]]
    assert any(p.split(":")[-1] == "5101" and p.split(":")[-2] == "5101" for p in ports), ports
    assert _default(services["sn"]["environment"]["SN_PORT"]) == "5101"


def test_storage_and_config_mounts(services):
    for name in ["sn", *DNS]:
        svc = services[name]
        env = svc["environment"]
        assert _default(env["ROOT_DIR"]) == "/data", name
        assert env["PASSWORD_FILE"] == "/config/passwd.txt"
        assert env["GROUPS_FILE"] == "/config/groups.txt"
        assert _default(env["BIND_ADDRESS"]) == "0.0.0.0"
        vols = [_default(v) for v in svc["volumes"]]
        assert "../../data:/data" in vols, vols
        assert "../config:/config:ro" in vols, vols
        assert (COMPOSE.parent / "../config").resolve() == REPO / "admin" / "config"


# --- Dockerfile ----------------------------------------------------------------

def _instructions(dockerfile=DOCKERFILE):
    """(INSTRUCTION, arguments) with continuations joined and comments dropped."""
    out, current = [], ""
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if current and line.startswith("#"):
            continue                       # comment inside a continuation
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        word, _, rest = current.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        current = ""
    assert not current, "Dockerfile ends inside a continuation"
    return out


def test_dockerfile_base_and_ports():
    ins = _instructions()
    assert ins[0] == ("FROM", "python:3.11-slim")
    exposed = " ".join(rest for word, rest in ins if word == "EXPOSE").split()
    assert {"5101", "6101"} <= set(exposed)
    env = " ".join(rest for word, rest in ins if word == "ENV")
    assert "BIND_ADDRESS=0.0.0.0" in env
    # non-editable install: config.yml must be found through CONFIG_DIR
    assert "CONFIG_DIR=/app/admin/config" in env
    assert (REPO / "admin" / "config" / "config.yml").is_file()


@pytest.mark.parametrize("dockerfile", [DOCKERFILE, LAMBDA_DOCKERFILE], ids=lambda p: p.name)
def test_copy_sources_exist(dockerfile):
    ignored = {ln.strip().rstrip("/") for ln in (REPO / ".dockerignore").read_text().splitlines()
               if ln.strip() and not ln.startswith("#")}
    copies = [rest for word, rest in _instructions(dockerfile) if word in ("COPY", "ADD")]
    assert copies
    for rest in copies:
        args = [a for a in rest.split() if not a.startswith("--")]
        assert len(args) >= 2, rest
        for src in args[:-1]:
            assert (REPO / src).exists(), f"COPY source missing: {src}"
            assert src.rstrip("/") not in ignored, f"COPY source excluded by .dockerignore: {src}"


def test_cmd_and_entrypoint_use_exec_form():
    found = [(word, rest) for word, rest in _instructions() if word in ("CMD", "ENTRYPOINT")]
    assert found
    for word, rest in found:
        value = json.loads(rest)           # shell form would not parse as JSON
        assert isinstance(value, list) and all(isinstance(v, str) for v in value), word
        assert value[0] not in ("sh", "/bin/sh", "bash", "/bin/bash"), word
    cmd = [json.loads(rest) for word, rest in found if word == "CMD"][-1]
    assert cmd == ["python", "-m", "server.sn.main"]


def test_runs_as_non_root():
    users = [rest for word, rest in _instructions() if word == "USER"]
    assert users and users[-1] not in ("root", "0")


def test_lambda_image_runs_the_handler():
    """Dockerfile.lambda: AWS's Python 3.12 Lambda base image, the package installed into
    the task root, CMD naming a handler that exists; lambda_build.sh builds that file."""
    ins = _instructions(LAMBDA_DOCKERFILE)
    assert ins[0] == ("FROM", "public.ecr.aws/lambda/python:3.12")
    cmd = json.loads([rest for word, rest in ins if word == "CMD"][-1])
    module, _, name = cmd[0].rpartition(".")
    assert cmd == ["server.lambda_app.lambda_handler"]
    assert callable(getattr(__import__(module, fromlist=[name]), name))
    run = " ".join(rest for word, rest in ins if word == "RUN")
    assert '--target "${LAMBDA_TASK_ROOT}"' in run
    env = " ".join(rest for word, rest in ins if word == "ENV")
    assert "CONFIG_DIR=/var/task/admin/config" in env
    script = REPO / "lambda_build.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    assert "-f Dockerfile.lambda" in script.read_text()


# --- docker compose config (parses only; needs the compose plugin, no engine) ------

def test_docker_compose_config():
    if shutil.which("docker") is None:
        pytest.skip("docker CLI not installed")
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip("docker compose plugin not available: "
                    + (probe.stderr or probe.stdout).strip().splitlines()[0])
    run = subprocess.run(["docker", "compose", "-f", str(COMPOSE), "config", "-q"],
                         capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 0, run.stderr
