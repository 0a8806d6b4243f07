"""deploy/: Prometheus config and alert rules (promtool), docker-compose (docker-compose config),
Kubernetes manifests (kubernetes-validate against the official schemas; kubectl kustomize), and
the Grafana dashboard and provisioning (structure, one panel per metric, PromQL checked by promtool).

`make test` installs promtool and docker-compose first (`make deploy-tools`); run alone without
them, those checks skip.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
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
def test_docker_compose_config_is_valid() -> None:
    compose = tool("docker-compose")
    out = run(compose, "-f", "docker-compose.yml", "config", cwd=DEPLOY)
    config = yaml.safe_load(out)
    services = config["services"]
    for name in ("gateway-1", "gateway-2", "router-1", "router-2", "api", "reviewer", "logger"):
        assert services[name]["image"] == "parley:dev", name
    for name in ("rabbitmq", "redis", "prometheus", "grafana", "minio"):
        assert name in services
    assert services["reviewer"]["command"] == ["reviewer"] and services["logger"]["command"] == ["logger"]


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
    files = [str(p) for p in sorted(K8S.glob("*.yaml")) if p.name != "kustomization.yaml"]
    run(sys.executable, "-m", "kubernetes_validate", "--strict", "--kubernetes-version", "1.30", *files)


def test_kubernetes_manifests_have_probes_resources_and_autoscaling() -> None:
    docs = k8s_documents()
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    for name in ("parley-api", "parley-gateway", "parley-router", "parley-reviewer", "parley-logger"):
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
    assert {"ConfigMap", "Secret", "Service", "Namespace"} <= kinds
    assert {d["metadata"]["name"] for d in docs if d["kind"] == "Service"} >= {
        f"parley-{c}-metrics" for c in ("api", "gateway", "router", "reviewer", "logger")
    }


def test_kustomize_renders_every_manifest() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed")
    rendered = [d for d in yaml.safe_load_all(run(kubectl, "kustomize", str(K8S))) if d]
    assert len(rendered) == len(k8s_documents())


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
