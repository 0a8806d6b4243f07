"""deploy/: Prometheus config and alert rules (promtool), docker-compose (docker-compose config),
Kubernetes manifests (kubernetes-validate against the official schemas; kubectl kustomize), and
the Grafana dashboard and provisioning (structure, one panel per metric, PromQL checked by promtool).

`make test` installs promtool and docker-compose first (`make deploy-tools`); run alone without
them, those checks skip.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml

from gateway import fronts as front_registry

if TYPE_CHECKING:
    from shared.config import Settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE_ENV_EXAMPLE = DEPLOY / ".env.example"
K8S_SECRETS_EXAMPLE = K8S / "parley-secrets.env.example"
REDIS_CLUSTER = K8S / "redis-cluster"  # the optional kustomize component: Redis Cluster instead of Sentinel
# What the consoles and brokers ship with, or deploy/ shipped before: never a working credential.
WEAK_VALUES = {"admin", "guest", "parley", "parley-minio-secret", "password", "minioadmin"}
SECRET_NAME = re.compile(r"PASS|SECRET|PASSWORD|TOKEN", re.IGNORECASE)
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "parley.json"

# Every metric the README's metrics table documents must have a dashboard panel.
IVS_METRICS = [
    "ConcurrentChatConnections",
    "MessagingRequests_total",
    "Requests_total",
    "MessagingDeliveries_total",
    "Deliveries_total",
    "InvocationErrors_total",
    "ResponseValidationErrors_total",
    "LogDestinationErrors_total",
    "LogDestinationAccessDeniedError_total",
    "LogDestinationResourceNotFoundErrors_total",
    "ResourceCount",
]
OPERATIONAL_METRICS = [
    "parley_send_to_deliver_seconds_bucket",
    "parley_router_action_age_seconds_bucket",
    "parley_router_pending_actions",
    "parley_router_owned_shards",
    "parley_router_batch_actions_bucket",
    "parley_bus_actions_per_publish_sum",
    "parley_bus_confirm_seconds_bucket",
    "parley_connect_rejections_total",
    "parley_request_errors_total",
    "parley_fanout_gap_recovered_total",
    "parley_fanout_gap_unrecovered_total",
    "parley_review_seconds_bucket",
    "parley_api_requests_total",
    "parley_api_request_seconds_bucket",
    "parley_connection_quota",
    "parley_log_records_written_total",
    "parley_log_deliveries_dropped_total",
]


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} not installed (make deploy-tools)")
    return path


def run(*args: str, cwd: Path = ROOT) -> str:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{' '.join(args)}\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


# --- Prometheus ------------------------------------------------------------------------------
@pytest.mark.parametrize("config", ["prometheus.yml", "prometheus-k8s.yml"])
def test_promtool_check_config(config: str) -> None:
    out = run(tool("promtool"), "check", "config", config, cwd=DEPLOY / "prometheus")
    assert "SUCCESS" in out


def test_promtool_check_and_unit_test_alert_rules() -> None:
    promtool = tool("promtool")
    assert "SUCCESS" in run(promtool, "check", "rules", "alerts.yml", cwd=DEPLOY / "prometheus")
    assert "SUCCESS" in run(promtool, "test", "rules", "alerts.test.yml", cwd=DEPLOY / "prometheus")


def test_alerts_cover_the_required_conditions() -> None:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"][0]["rules"]
    exprs = " ".join(rule["expr"] for rule in rules)
    for needle in (
        "parley_connection_quota",  # 80% of PARLEY_MAX_CONNECTIONS
        "parley_request_errors_total",  # delivery errors
        "InvocationErrors_total",
        "parley_router_action_age_seconds_bucket",  # bus lag p99
        "LogDestinationErrors_total",
    ):
        assert needle in exprs
    assert all({"alert", "expr", "labels", "annotations"} <= rule.keys() for rule in rules)


# --- docker compose --------------------------------------------------------------------------
def env_file_values(path: Path) -> dict[str, str]:
    """``NAME=value`` lines of an env file, also the commented-out ``# NAME=value`` optional ones."""
    values = {}
    for line in path.read_text().splitlines():
        match = re.fullmatch(r"#?\s*([A-Z][A-Z0-9_]*)=(.*)", line.strip())
        if match:
            values[match[1]] = match[2]
    return values


def required_compose_variables() -> list[str]:
    return sorted(set(re.findall(r"\$\{([A-Z0-9_]+):\?", (DEPLOY / "docker-compose.yml").read_text())))


def filled_env_file(tmp_path: Path, **changes: str | None) -> Path:
    """deploy/.env.example with every empty (required) value filled with a fresh random secret;
    ``NAME=None`` leaves NAME out."""
    lines = []
    for line in COMPOSE_ENV_EXAMPLE.read_text().splitlines():
        match = re.fullmatch(r"([A-Z][A-Z0-9_]*)=(.*)", line)
        if match:
            name, value = match[1], match[2] or secrets.token_urlsafe(32)
            value = changes.pop(name, value)
            if value is None:
                continue
            line = f"{name}={value}"
        lines.append(line)
    lines += [f"{name}={value}" for name, value in changes.items() if value is not None]
    path = tmp_path / "compose.env"
    path.write_text("\n".join(lines) + "\n")
    return path


def compose_config(env_file: Path) -> subprocess.CompletedProcess[str]:
    """``docker-compose config`` with only ``env_file`` for variables: neither this shell's
    environment nor a developer's deploy/.env leaks in."""
    return subprocess.run(
        [tool("docker-compose"), "--env-file", str(env_file), "-f", "docker-compose.yml", "config"],
        cwd=DEPLOY,
        env={"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")},
        capture_output=True,
        text=True,
        timeout=120,
    )


def rendered_compose(env_file: Path) -> dict:
    result = compose_config(env_file)
    assert result.returncode == 0, result.stdout + result.stderr
    return yaml.safe_load(result.stdout)


def published(service: dict) -> list[tuple[str, str]]:
    """(host address, host port) of each published port, in short or long syntax."""
    found = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            found.append((port.get("host_ip", ""), str(port.get("published", ""))))
        else:
            parts = str(port).rsplit(":", 2)
            found.append((parts[0] if len(parts) == 3 else "", parts[-2] if len(parts) > 1 else ""))
    return found


def test_docker_compose_config_is_valid(tmp_path: Path) -> None:
    config = rendered_compose(filled_env_file(tmp_path))
    services = config["services"]
    for name in ("gateway-1", "gateway-2", "router-1", "router-2", "api", "reviewer", "logger"):
        assert services[name]["image"] == "parley:dev", name
    for name in ("rabbitmq", "redis", "prometheus", "grafana", "minio"):
        assert name in services
    assert services["reviewer"]["command"] == ["reviewer"] and services["logger"]["command"] == ["logger"]
    for front in FRONTS:  # every registered seed protocol front runs, its port published
        assert services[f"front-{front}"]["command"] == ["front", front]
        assert services[f"front-{front}"]["image"] == "parley:dev" and services[f"front-{front}"]["healthcheck"]


def test_compose_refuses_to_start_without_each_secret(tmp_path: Path) -> None:
    required = required_compose_variables()
    assert {"PARLEY_TOKEN_SECRET", "PARLEY_SECRET_ACCESS_KEY", "GRAFANA_ADMIN_PASSWORD"} <= set(required)
    assert {"RABBITMQ_PASSWORD", "MINIO_ROOT_PASSWORD"} <= set(required)
    unfilled = compose_config(COMPOSE_ENV_EXAMPLE)  # the example as shipped: every secret empty
    assert unfilled.returncode != 0
    for name in required:
        for missing in (None, ""):  # left out, or NAME= with nothing after it
            result = compose_config(filled_env_file(tmp_path, **{name: missing}))
            assert result.returncode != 0, name
            assert "deploy/.env" in result.stderr and name in result.stderr, result.stderr


def test_compose_env_example_documents_every_variable() -> None:
    referenced = set(re.findall(r"\$\{([A-Z0-9_]+)", (DEPLOY / "docker-compose.yml").read_text()))
    example = env_file_values(COMPOSE_ENV_EXAMPLE)
    assert referenced == set(example), "deploy/.env.example must list exactly the variables compose reads"
    lines = COMPOSE_ENV_EXAMPLE.read_text().splitlines()
    for name in referenced:
        index = next(i for i, line in enumerate(lines) if re.match(rf"#?\s*{name}=", line))
        assert index > 0 and lines[index - 1].startswith("#"), f"{name} needs a comment line above it"
    for name in required_compose_variables():
        assert example[name] == "", f"{name} must ship empty in .env.example"


def test_compose_publishes_every_port_on_loopback_by_default(tmp_path: Path) -> None:
    services = rendered_compose(filled_env_file(tmp_path))["services"]
    ports = {name: published(svc) for name, svc in services.items() if svc.get("ports")}
    assert {"api", "gateway-1", "gateway-2", "grafana", "prometheus", "rabbitmq", "minio"} <= ports.keys()
    for name, bound in ports.items():
        assert all(address == "127.0.0.1" for address, _ in bound), (name, bound)
    # PARLEY_BIND opens the chat and control-plane ports only; the consoles need PARLEY_OPS_BIND too
    services = rendered_compose(filled_env_file(tmp_path, PARLEY_BIND="0.0.0.0"))["services"]
    assert published(services["api"]) == [("0.0.0.0", "8081")]
    assert published(services["gateway-2"]) == [("0.0.0.0", "8082")]
    assert published(services["grafana"]) == [("127.0.0.1", "3000")]
    services = rendered_compose(filled_env_file(tmp_path, PARLEY_OPS_BIND="0.0.0.0"))["services"]
    assert published(services["grafana"]) == [("0.0.0.0", "3000")] and published(services["api"])[0][0] == "127.0.0.1"


def test_compose_credentials_come_from_the_env_file(tmp_path: Path) -> None:
    values = {name: secrets.token_urlsafe(32) for name in required_compose_variables()}
    services = rendered_compose(filled_env_file(tmp_path, **values))["services"]
    assert services["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == values["GRAFANA_ADMIN_PASSWORD"]
    assert services["rabbitmq"]["environment"]["RABBITMQ_DEFAULT_PASS"] == values["RABBITMQ_PASSWORD"]
    assert services["minio"]["environment"]["MINIO_ROOT_PASSWORD"] == values["MINIO_ROOT_PASSWORD"]
    for name, service in services.items():
        for key, value in (service.get("environment") or {}).items():
            if SECRET_NAME.search(key):
                assert value not in WEAK_VALUES and "change-me" not in str(value), (name, key)
        if service.get("image") == "parley:dev":
            env = {**env_file_values(DEPLOY / "parley.env"), **service["environment"]}
            assert env["PARLEY_TOKEN_SECRET"] == values["PARLEY_TOKEN_SECRET"], name
            assert values["RABBITMQ_PASSWORD"] in env["PARLEY_AMQP_URL"], name


def test_compose_parley_settings_pass_the_startup_checks(tmp_path: Path) -> None:
    from shared.config import Settings

    services = rendered_compose(filled_env_file(tmp_path))["services"]
    env = {**env_file_values(DEPLOY / "parley.env"), **services["api"]["environment"]}
    settings = Settings(
        token_secret=env["PARLEY_TOKEN_SECRET"],
        access_key_id=env["PARLEY_ACCESS_KEY_ID"],
        secret_access_key=env["PARLEY_SECRET_ACCESS_KEY"],
    )
    assert settings.secret_problems(token=True, sigv4=True) == []


def test_no_placeholder_secret_ships_in_deploy() -> None:
    """parley.env and the k8s files carry no secret values at all; the examples ship them empty."""
    parley_env = env_file_values(DEPLOY / "parley.env")
    assert not [name for name in parley_env if SECRET_NAME.search(name)], "secrets belong in deploy/.env"
    assert "PARLEY_AMQP_URL" not in parley_env  # it holds the RabbitMQ password
    for path in [*DEPLOY.rglob("*.yml"), *DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.env*"), DEPLOY / "README.md"]:
        text = path.read_text()
        assert not re.search(r"change-?me", text, re.IGNORECASE), path
        assert "admin/admin" not in text, path
    for example in (COMPOSE_ENV_EXAMPLE, K8S_SECRETS_EXAMPLE):
        for name, value in env_file_values(example).items():
            if SECRET_NAME.search(name):
                assert value == "", (example.name, name)


def test_compose_prometheus_scrapes_every_parley_service() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    prometheus = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = {
        t.split(":")[0] for job in prometheus["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]
    }
    parley_services = {name for name, svc in compose["services"].items() if svc.get("image") == "parley:dev"}
    assert parley_services <= targets


# --- Kubernetes ------------------------------------------------------------------------------
def k8s_documents() -> list[dict]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return docs


def test_kubernetes_manifests_validate_against_the_official_schemas() -> None:
    files = [
        str(p) for p in sorted([*K8S.glob("*.yaml"), *REDIS_CLUSTER.glob("*.yaml")]) if p.name != "kustomization.yaml"
    ]
    run(sys.executable, "-m", "kubernetes_validate", "--strict", "--kubernetes-version", "1.30", *files)


def test_kubernetes_manifests_have_probes_resources_and_autoscaling() -> None:
    docs = k8s_documents()
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    for name in sorted(PARLEY_DEPLOYMENTS):
        container = deployments[name]["spec"]["template"]["spec"]["containers"][0]
        assert container["readinessProbe"] and container["livenessProbe"], name
        assert container["resources"]["requests"] and container["resources"]["limits"], name
        refs = {ref.get("configMapRef", ref.get("secretRef", {})).get("name") for ref in container["envFrom"]}
        assert refs == {"parley-config", "parley-secrets"}, name
    for name in ("parley-api", "parley-gateway"):
        probe = deployments[name]["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
        assert probe["httpGet"]["path"] == "/healthz"
    hpas = {d["spec"]["scaleTargetRef"]["name"] for d in docs if d["kind"] == "HorizontalPodAutoscaler"}
    assert {"parley-gateway", "parley-router"} <= hpas
    kinds = {d["kind"] for d in docs}
    assert {"ConfigMap", "Service", "Namespace"} <= kinds
    assert {d["metadata"]["name"] for d in docs if d["kind"] == "Service"} >= {
        f"parley-{c}-metrics" for c in ("api", "gateway", "router", "reviewer", "logger")
    }


def test_kubernetes_ships_no_secret_values() -> None:
    """parley-secrets (and parley-rabbitmq for rabbitmq.yaml) must be created by the operator from
    the documented example: a manifest with values would deploy those values."""
    docs = k8s_documents()
    assert not [d["metadata"]["name"] for d in docs if d["kind"] == "Secret"]
    example = env_file_values(K8S_SECRETS_EXAMPLE)
    assert {"PARLEY_TOKEN_SECRET", "PARLEY_ACCESS_KEY_ID", "PARLEY_SECRET_ACCESS_KEY", "PARLEY_AMQP_URL"} <= set(
        example
    )
    for doc in docs:
        for key in doc.get("data") or {}:
            assert not SECRET_NAME.search(key), (doc["metadata"]["name"], key)  # a ConfigMap is no place for one
        pod = doc.get("spec", {}).get("template", {}).get("spec", {})
        for container in pod.get("containers", []):
            for var in container.get("env", []):
                if SECRET_NAME.search(var["name"]):
                    assert "value" not in var and var["valueFrom"]["secretKeyRef"], (doc["metadata"]["name"], var)
    readme = (DEPLOY / "README.md").read_text()
    assert "kubectl -n parley create secret generic parley-secrets" in readme
    assert "kubectl -n parley create secret generic parley-rabbitmq" in readme
    # ... and that command creates every key the manifests read from parley-rabbitmq
    command = re.search(r"kubectl -n parley create secret generic parley-rabbitmq(.*?)\n(?!\s)", readme, re.S)
    assert command is not None
    created = set(re.findall(r"--from-literal=([\w-]+)=", command[1]))
    assert secret_keys_used(docs, "parley-rabbitmq") == created


def secret_keys_used(docs: list[dict], secret: str) -> set[str]:
    """Keys of the Secret ``secret`` that pods read, as env (secretKeyRef) or as volume items."""
    keys = set()
    for doc in docs:
        pod = doc.get("spec", {}).get("template", {}).get("spec", {})
        for container in pod.get("initContainers", []) + pod.get("containers", []):
            for var in container.get("env", []):
                ref = var.get("valueFrom", {}).get("secretKeyRef", {})
                if ref.get("name") == secret:
                    keys.add(ref["key"])
        for volume in pod.get("volumes", []):
            if volume.get("secret", {}).get("secretName") == secret:
                keys |= {item["key"] for item in volume["secret"]["items"]}
    return keys


def test_kustomize_renders_every_manifest() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed")
    rendered = [d for d in yaml.safe_load_all(run(kubectl, "kustomize", str(K8S))) if d]
    assert len(rendered) == len(k8s_documents())


# --- Production HA: 3-node RabbitMQ, Redis with Sentinel or Cluster ---------------------------
def named(docs: list[dict], kind: str, name: str) -> dict:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, (kind, name)
    return found[0]


def statefulset_pods(docs: list[dict], name: str) -> list[str]:
    """``<pod>.<headless service>`` of each pod of StatefulSet ``name``: its stable DNS names."""
    sts = named(docs, "StatefulSet", name)
    service = named(docs, "Service", sts["spec"]["serviceName"])
    assert service["spec"]["clusterIP"] == "None", "a StatefulSet's pod names need a headless Service"
    assert service["spec"]["selector"].items() <= sts["spec"]["template"]["metadata"]["labels"].items()
    return [f"{name}-{i}.{service['metadata']['name']}" for i in range(sts["spec"]["replicas"])]


def parley_config(docs: list[dict]) -> dict[str, str]:
    return named(docs, "ConfigMap", "parley-config")["data"]


def pdb_covers(docs: list[dict], statefulset: str) -> None:
    """A PodDisruptionBudget of at most one voluntary eviction at a time selects the StatefulSet's pods."""
    labels = named(docs, "StatefulSet", statefulset)["spec"]["template"]["metadata"]["labels"]
    budgets = [
        d
        for d in docs
        if d["kind"] == "PodDisruptionBudget" and d["spec"]["selector"]["matchLabels"].items() <= labels.items()
    ]
    assert [b["spec"].get("maxUnavailable") for b in budgets] == [1], statefulset


def config_scripts(docs: list[dict]) -> dict[str, str]:
    return {
        key: value
        for doc in docs
        if doc["kind"] == "ConfigMap"
        for key, value in (doc.get("data") or {}).items()
        if key.endswith(".sh")
    }


def test_kubernetes_rabbitmq_is_a_three_node_cluster() -> None:
    docs = k8s_documents()
    pods = statefulset_pods(docs, "parley-rabbitmq")
    assert len(pods) == 3
    conf = named(docs, "ConfigMap", "parley-rabbitmq-config")["data"]["20-parley.conf"]
    settings = dict(line.split(" = ", 1) for line in conf.splitlines() if " = " in line and not line.startswith("#"))
    assert settings["cluster_partition_handling"] == "pause_minority"
    assert settings["cluster_formation.peer_discovery_backend"] == "classic_config"
    peers = [value for key, value in settings.items() if key.startswith("cluster_formation.classic_config.nodes.")]
    assert peers == [f"rabbit@{pod}.parley.svc.cluster.local" for pod in pods]
    container = named(docs, "StatefulSet", "parley-rabbitmq")["spec"]["template"]["spec"]["containers"][0]
    env = {var["name"]: var.get("value") for var in container["env"]}
    # the node's own name must be the one its peers list
    assert env["RABBITMQ_USE_LONGNAME"] == "true"
    assert env["RABBITMQ_NODENAME"] == "rabbit@$(POD_NAME).parley-rabbitmq-headless.$(POD_NAMESPACE).svc.cluster.local"
    assert "erlang-cookie" in secret_keys_used(docs, "parley-rabbitmq")
    pdb_covers(docs, "parley-rabbitmq")


def test_every_parley_container_gets_every_rabbitmq_node() -> None:
    """PARLEY_AMQP_URL comes from parley-secrets (it holds the password): every parley container
    reads that Secret and nothing overrides it, and the example lists each RabbitMQ pod once."""
    from urllib.parse import urlsplit

    from shared.engine.amqp.failover import node_urls

    docs = k8s_documents()
    nodes = [urlsplit(url) for url in node_urls(env_file_values(K8S_SECRETS_EXAMPLE)["PARLEY_AMQP_URL"])]
    assert [(url.hostname, url.port) for url in nodes] == [
        (pod, 5672) for pod in statefulset_pods(docs, "parley-rabbitmq")
    ]
    assert all(url.scheme == "amqp" and url.username == "parley" for url in nodes)
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    assert PARLEY_DEPLOYMENTS <= deployments.keys()
    for name in PARLEY_DEPLOYMENTS:
        for container in deployments[name]["spec"]["template"]["spec"]["containers"]:
            assert {"name": "parley-secrets"} in [ref.get("secretRef") for ref in container["envFrom"]], name
            overridden = {var["name"] for var in container.get("env", [])} & {
                "PARLEY_AMQP_URL",
                "PARLEY_AMQP_QUEUE_TYPE",
            }
            assert not overridden, (name, overridden)
    assert parley_config(docs)["PARLEY_AMQP_QUEUE_TYPE"] == "quorum"


def pod_settings(config: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The Settings a parley pod builds from ``config`` (parley-config's data) and the secrets
    example's values, through the same environment parsing."""
    from shared.config import Settings

    for name in [name for name in os.environ if name.startswith("PARLEY_")]:
        monkeypatch.delenv(name)
    for name, value in {**env_file(K8S_SECRETS_EXAMPLE), **config}.items():
        monkeypatch.setenv(name, value)
    return Settings.from_env()


def test_kubernetes_parley_uses_the_redis_sentinels(monkeypatch: pytest.MonkeyPatch) -> None:
    docs = k8s_documents()
    config = parley_config(docs)
    sentinels = statefulset_pods(docs, "parley-redis-sentinel")
    settings = pod_settings(config, monkeypatch)
    assert settings.redis_problems() == [] and not settings.redis_cluster
    assert settings.redis_sentinel_nodes == tuple((pod, 26379) for pod in sentinels)
    assert len(sentinels) == 3 and len(statefulset_pods(docs, "parley-redis")) == 3
    assert "PARLEY_REDIS_CLUSTER" not in config
    scripts = config_scripts(docs)
    # the sentinels monitor the master name parley asks for, with a majority quorum
    assert f"MASTER_NAME={config['PARLEY_REDIS_SENTINEL_MASTER']}\n" in scripts["lib.sh"]
    quorum = re.search(r"sentinel monitor \$MASTER_NAME \$MASTER 6379 (\d+)", scripts["sentinel.sh"])
    assert quorum is not None and int(quorum[1]) == len(sentinels) // 2 + 1
    # pod 0 of the redis StatefulSet is the master only when no sentinel names one
    assert "SENTINEL get-master-addr-by-name" in scripts["lib.sh"]
    assert 'REDIS_DOMAIN="parley-redis-headless.' in scripts["lib.sh"]
    assert 'MASTER="parley-redis-0.$REDIS_DOMAIN"' in scripts["redis.sh"]
    for statefulset in ("parley-redis", "parley-redis-sentinel"):
        pdb_covers(docs, statefulset)


def test_backing_service_scripts_parse(tmp_path: Path) -> None:
    """`sh -n` on every shell script the Redis, Sentinel and Redis Cluster pods run."""
    component = [d for d in yaml.safe_load_all((REDIS_CLUSTER / "redis-cluster.yaml").read_text()) if d]
    scripts = config_scripts(k8s_documents() + component)
    assert {"lib.sh", "redis.sh", "sentinel.sh", "prestop.sh", "node.sh", "create.sh"} <= scripts.keys()
    for name, text in scripts.items():
        (tmp_path / name).write_text(text)
        run("sh", "-n", str(tmp_path / name))


def kustomize(kubectl: str, tmp_path: Path, *, components: list[Path]) -> list[dict]:
    """deploy/k8s rendered by an overlay of the kind deploy/README.md describes."""
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        # kustomize takes relative paths only
        yaml.safe_dump(
            {
                "resources": [os.path.relpath(K8S, overlay)],
                "components": [os.path.relpath(c, overlay) for c in components],
            }
        )
    )
    return [d for d in yaml.safe_load_all(run(kubectl, "kustomize", str(overlay))) if d]


def test_redis_cluster_component_replaces_sentinel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed")
    base = [d for d in yaml.safe_load_all(run(kubectl, "kustomize", str(K8S))) if d]
    docs = kustomize(kubectl, tmp_path, components=[REDIS_CLUSTER])
    config = parley_config(docs)
    assert config["PARLEY_REDIS_CLUSTER"] == "true"
    settings = pod_settings(config, monkeypatch)  # Cluster and Sentinel are exclusive: parley checks
    assert settings.redis_cluster and settings.redis_problems() == [] and settings.redis_sentinel_nodes == ()
    assert not {"PARLEY_REDIS_SENTINELS", "PARLEY_REDIS_SENTINEL_MASTER"} & config.keys()
    assert {k: v for k, v in config.items() if k != "PARLEY_REDIS_CLUSTER"} == {
        k: v for k, v in parley_config(base).items() if not k.startswith("PARLEY_REDIS_SENTINEL")
    }
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert not [name for kind, name in names if name.startswith(("parley-redis-sentinel", "parley-redis-headless"))]
    assert ("StatefulSet", "parley-redis") not in names and ("ConfigMap", "parley-redis-scripts") not in names
    assert all(d["metadata"].get("namespace") == "parley" for d in docs if d["kind"] != "Namespace")
    nodes = statefulset_pods(docs, "parley-redis-cluster")
    assert len(nodes) == 6
    pdb_covers(docs, "parley-redis-cluster")
    create = config_scripts(docs)["create.sh"]
    assert "redis-cli --cluster create $NODES --cluster-replicas 1 --cluster-yes" in create
    assert "for i in 0 1 2 3 4 5; do" in create and "for i in 0 1 2 3 4 5; do" in config_scripts(docs)["node.sh"]
    job = named(docs, "Job", "parley-redis-cluster-create")["spec"]["template"]["spec"]["containers"][0]
    assert job["command"] == ["sh", "/scripts/create.sh"]
    # the seed the secrets example names for this mode is a Service of the cluster's pods
    seed = named(docs, "Service", "parley-redis-cluster")
    assert "redis://parley-redis-cluster:6379/0" in K8S_SECRETS_EXAMPLE.read_text()
    assert (
        seed["spec"]["selector"].items()
        <= named(docs, "StatefulSet", "parley-redis-cluster")["spec"]["template"]["metadata"]["labels"].items()
    )
    # everything else is the same as the default's
    others = {(d["kind"], d["metadata"]["name"]): d for d in docs if "redis" not in d["metadata"]["name"]}
    assert others == {
        (d["kind"], d["metadata"]["name"]): d
        for d in base
        if "redis" not in d["metadata"]["name"] and d["metadata"]["name"] != "parley-config"
    } | {("ConfigMap", "parley-config"): named(docs, "ConfigMap", "parley-config")}


def test_kustomization_lists_the_component_commented_out() -> None:
    """The default is Sentinel; the README's way to switch is uncommenting these two lines."""
    kustomization = (K8S / "kustomization.yaml").read_text()
    assert "components" not in yaml.safe_load(kustomization)
    assert "# components:\n#   - redis-cluster\n" in kustomization
    assert yaml.safe_load((REDIS_CLUSTER / "kustomization.yaml").read_text())["kind"] == "Component"


def test_compose_documents_each_redis_mode(tmp_path: Path) -> None:
    """parley.env ships single-node Redis and the Sentinel / Cluster settings commented out; the
    Sentinel ones, uncommented, pass the startup check, and compose still renders."""
    from shared.config import Settings

    active = env_file(DEPLOY / "parley.env")
    documented = env_file_values(DEPLOY / "parley.env")
    assert active["PARLEY_REDIS_URL"] == "redis://redis:6379/0" and active["PARLEY_AMQP_QUEUE_TYPE"] == "quorum"
    assert not {"PARLEY_REDIS_SENTINELS", "PARLEY_REDIS_SENTINEL_MASTER", "PARLEY_REDIS_CLUSTER"} & active.keys()
    assert documented["PARLEY_REDIS_CLUSTER"] == "true"
    sentinel = Settings(
        redis_sentinels=documented["PARLEY_REDIS_SENTINELS"],
        redis_sentinel_master=documented["PARLEY_REDIS_SENTINEL_MASTER"],
    )
    assert sentinel.redis_problems() == [] and len(sentinel.redis_sentinel_nodes) == 3
    assert Settings(redis_cluster=documented["PARLEY_REDIS_CLUSTER"] == "true").redis_problems() == []
    services = rendered_compose(filled_env_file(tmp_path))["services"]
    from shared.engine.amqp.failover import node_urls

    for name, service in services.items():
        if service.get("image") == "parley:dev":
            assert [url.split("@")[1] for url in node_urls(service["environment"]["PARLEY_AMQP_URL"])] == [
                "rabbitmq:5672/"
            ], name


def test_readmes_say_how_to_run_each_mode() -> None:
    deploy_readme = (DEPLOY / "README.md").read_text()
    for needle in (
        "Production HA",
        "PARLEY_REDIS_SENTINELS",
        "PARLEY_REDIS_CLUSTER=true",
        "components:",
        "redis-cluster",
        "pause_minority",
        "PARLEY_AMQP_QUEUE_TYPE=classic",
        "drain",
        "PARLEY_NAMESPACE",
    ):
        assert needle in deploy_readme, needle
    readme = (ROOT / "README.md").read_text()
    assert "PARLEY_REDIS_CLUSTER" in readme and "deploy/README.md" in readme


# --- Grafana ---------------------------------------------------------------------------------
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def test_dashboard_is_generated_from_build_dashboard_py() -> None:
    sys.path.insert(0, str(DEPLOY / "grafana"))
    try:
        import build_dashboard
    finally:
        sys.path.pop(0)
    assert DASHBOARD.read_text() == build_dashboard.render(), "run deploy/grafana/build_dashboard.py"


def test_dashboard_structure() -> None:
    board = dashboard()
    for key in ("uid", "title", "schemaVersion", "panels", "time", "templating"):
        assert key in board
    assert isinstance(board["schemaVersion"], int) and board["schemaVersion"] >= 30
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert {"h", "w", "x", "y"} <= grid.keys() and grid["x"] + grid["w"] <= 24
        if panel["type"] == "row":
            continue
        assert panel["type"] in ("timeseries", "stat", "gauge") and panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "prometheus"}
        assert panel["targets"] and all(t["expr"] and t["refId"] for t in panel["targets"])


def test_dashboard_has_a_panel_for_every_metric() -> None:
    exprs = " ".join(t["expr"] for p in dashboard()["panels"] for t in p.get("targets", []))
    missing = [m for m in IVS_METRICS + OPERATIONAL_METRICS if not re.search(rf"\b{m}\b", exprs)]
    assert not missing


def test_dashboard_promql_parses(tmp_path: Path) -> None:
    """Every panel query, as a recording rule, passes `promtool check rules` (a PromQL parse)."""
    promtool = tool("promtool")
    rules = [
        {"record": f"dashboard:check:{n}", "expr": t["expr"].replace("$__rate_interval", "1m")}
        for n, t in enumerate(t for p in dashboard()["panels"] for t in p.get("targets", []))
    ]
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    assert "SUCCESS" in run(promtool, "check", "rules", str(path))


def test_grafana_provisioning_points_at_the_dashboard_and_datasource() -> None:
    provisioning = DEPLOY / "grafana" / "provisioning"
    datasource = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"][0]
    assert datasource["uid"] == "prometheus" and datasource["type"] == "prometheus"
    provider = yaml.safe_load((provisioning / "dashboards" / "parley.yml").read_text())["providers"][0]
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{provider['options']['path']}:ro" in mounts


def test_readme_documents_every_metric() -> None:
    readme = (ROOT / "README.md").read_text()
    for metric in IVS_METRICS + OPERATIONAL_METRICS:
        base = re.sub(r"_(total|bucket|sum|count)$", "", metric)
        assert f"`{base}" in readme, metric


# --- metrics off the public ports --------------------------------------------------
def env_file(path: Path) -> dict[str, str]:
    lines = (line.strip() for line in path.read_text().splitlines())
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


FRONTS = tuple(front_registry.names())  # deploy/ runs every front this build serves
PARLEY_DEPLOYMENTS = {f"parley-{c}" for c in ("api", "gateway", "router", "reviewer", "logger")} | {
    f"parley-front-{front}" for front in FRONTS
}


def test_deployments_scrape_metrics_on_the_metrics_port_not_the_public_ones() -> None:
    """PARLEY_METRICS_PUBLIC=false in both deployments, so Prometheus must scrape PARLEY_METRICS_PORT."""
    compose_env = env_file(DEPLOY / "parley.env")
    assert compose_env["PARLEY_METRICS_PUBLIC"] == "false"
    port = compose_env["PARLEY_METRICS_PORT"]
    prometheus = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    for job in prometheus["scrape_configs"]:
        if job["job_name"].startswith("parley-"):
            for target in (t for sc in job["static_configs"] for t in sc["targets"]):
                assert target.endswith(f":{port}"), target

    config = next(d for d in k8s_documents() if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "parley-config")
    assert config["data"]["PARLEY_METRICS_PUBLIC"] == "false"
    port = config["data"]["PARLEY_METRICS_PORT"]
    prometheus_k8s = yaml.safe_load((DEPLOY / "prometheus" / "prometheus-k8s.yml").read_text())
    for job in prometheus_k8s["scrape_configs"]:
        assert all(str(sd["port"]) == port for sd in job["dns_sd_configs"]), job["job_name"]
    for doc in k8s_documents():
        name = doc["metadata"]["name"]
        if doc["kind"] == "Service" and name.startswith("parley-") and name.endswith("-metrics"):
            assert [str(p["targetPort"]) for p in doc["spec"]["ports"]] == [port], name
        if doc["kind"] == "Deployment" and name in PARLEY_DEPLOYMENTS:
            template = doc["spec"]["template"]
            assert template["metadata"]["annotations"]["prometheus.io/port"] == port, name
            ports = {str(p["containerPort"]) for p in template["spec"]["containers"][0]["ports"]}
            assert port in ports, name
