"""docker-compose.yml stays valid and in step with ops/ (there is no Docker engine here).

Checks: every reference between services resolves; health-gated dependencies have healthchecks;
the connection variables are the ones `ops/stack env` exports; every `python -m` command names a
module that exists; the broker settings equal ops/kafka/server.properties.template; image tags
are pinned and published ports bind to 127.0.0.1 only.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
SOURCE_ROOT = ROOT / "services"
APP_SERVICES = ("collector", "trigger", "optimizer", "manager")
CONNECTION_VARS = ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "OTEL_EXPORTER_OTLP_ENDPOINT")
# Broker settings that describe where it listens or stores data; they differ by design between
# the host stack (127.0.0.1, free ports, state dir) and containers (service names, volumes).
TOPOLOGY_KEYS = {
    "listeners",
    "advertised.listeners",
    "controller.quorum.voters",
    "listener.security.protocol.map",
    "log.dirs",
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _depends_on(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on", {})
    if isinstance(deps, list):
        return {name: "service_started" for name in deps}
    return {name: spec.get("condition", "service_started") for name, spec in deps.items()}


def _module_path(module: str) -> Path | None:
    """The file `python -m module` would run, or None when it does not exist."""
    base = SOURCE_ROOT.joinpath(*module.split("."))
    for candidate in (base / "__main__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _exported_names(script: Path) -> set[str]:
    """The variables ``script env`` prints (``echo/printf "export NAME=..."``), not those the
    script exports for its own commands. The secure stack's extra settings (ops/secure.sh)
    have no compose counterpart: compose mirrors the plaintext stack."""
    return set(re.findall(r"""(?:echo|printf) ['"]export ([A-Z_]+)=""", script.read_text()))


def test_expected_services_exist(services: dict[str, dict[str, Any]]) -> None:
    expected = {"kafka", "postgres", "migrate", "otel-collector", "jaeger", *APP_SERVICES}
    assert expected <= services.keys()


def test_dependencies_reference_existing_services(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for dep, condition in _depends_on(service).items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            assert dep != name, f"{name} depends on itself"
            assert condition in {
                "service_started",
                "service_healthy",
                "service_completed_successfully",
            }, f"{name} -> {dep}: bad condition {condition}"
            if condition == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep}'s health, none"
            if condition == "service_completed_successfully":
                assert services[dep].get("restart") == "no", f"{dep} is a one-shot job"


def test_dependency_graph_has_no_cycle(services: dict[str, dict[str, Any]]) -> None:
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"dependency cycle: {' -> '.join((*path, name))}"
        if name in done:
            return
        for dep in _depends_on(services[name]):
            visit(dep, (*path, name))
        done.add(name)

    for name in services:
        visit(name, ())


def test_healthchecks_are_commands(services: dict[str, dict[str, Any]]) -> None:
    for name in ("kafka", "postgres"):
        test = services[name]["healthcheck"]["test"]
        assert test[0] in {"CMD", "CMD-SHELL"}, name
        assert len(test) >= 2, name


def test_connection_vars_match_ops_stack_env(services: dict[str, dict[str, Any]]) -> None:
    ops_names = _exported_names(ROOT / "ops/kafka.sh") | _exported_names(ROOT / "ops/postgres.sh")
    assert {"KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL"} <= ops_names
    for name in (*APP_SERVICES, "migrate"):
        env = services[name]["environment"]
        assert isinstance(env, dict), f"{name}: environment must be a mapping"
        for var in CONNECTION_VARS:
            assert var in env, f"{name} lacks {var}"
        for var in ops_names:
            assert var in env, f"{name} lacks {var}, which ops/stack env exports"
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
        assert "@postgres:5432/flywheel" in env["DATABASE_URL"]
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"].startswith("http://otel-collector:")


def test_python_commands_name_existing_modules(services: dict[str, dict[str, Any]]) -> None:
    missing = []
    for name, service in services.items():
        command = service.get("command")
        if not isinstance(command, list) or command[:2] != ["python", "-m"]:
            continue
        module = command[2]
        assert module.startswith("dspy_flywheel."), f"{name}: {module}"
        if _module_path(module) is None:
            missing.append(f"{name}: {module}")
    assert not missing, f"modules not found under services/: {missing}"


def test_app_services_run_their_module(services: dict[str, dict[str, Any]]) -> None:
    for name in APP_SERVICES:
        assert services[name]["command"] == ["python", "-m", f"dspy_flywheel.{name}"]
    assert services["migrate"]["command"] == ["python", "-m", "dspy_flywheel.store.migrate"]


def test_kafka_settings_match_ops_template(services: dict[str, dict[str, Any]]) -> None:
    template = ROOT / "ops/kafka/server.properties.template"
    ops_settings = {}
    for line in template.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            ops_settings[key.strip()] = value.strip()
    env = services["kafka"]["environment"]
    for key, value in ops_settings.items():
        var = "KAFKA_" + key.upper().replace(".", "_")
        assert var in env, f"compose kafka lacks {var} (ops sets {key}={value})"
        if key not in TOPOLOGY_KEYS:
            assert str(env[var]) == value, f"{var}: compose {env[var]!r} != ops {value!r}"
    assert "CONTROLLER" in env["KAFKA_CONTROLLER_LISTENER_NAMES"]


def test_kafka_image_matches_ops_version(services: dict[str, dict[str, Any]]) -> None:
    match = re.search(r"FLYWHEEL_KAFKA_VERSION:-([0-9.]+)", (ROOT / "ops/kafka.sh").read_text())
    assert match, "ops/kafka.sh has no default Kafka version"
    assert services["kafka"]["image"] == f"apache/kafka:{match.group(1)}"
    assert match.group(1).startswith("4.")


def test_images_are_pinned(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        image = service.get("image", "")
        if "build" in service:
            continue
        repo, _, tag = image.rpartition(":")
        assert repo, f"{name}: no image repository ({image!r})"
        assert tag, f"{name}: pin the image tag ({image!r})"
        assert tag != "latest", f"{name}: pin the image tag ({image!r})"


def test_published_ports_bind_loopback(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_built_services_use_the_repo_dockerfile(services: dict[str, dict[str, Any]]) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY services" in dockerfile
    for name, service in services.items():
        if "build" in service:
            assert service["build"] == ".", name
            assert service["image"] == "dspy-flywheel:dev", name


def test_otel_collector_config(services: dict[str, dict[str, Any]]) -> None:
    mounts = services["otel-collector"]["volumes"]
    host_path, container_path = mounts[0].split(":")[:2]
    assert (ROOT / host_path).is_file()
    assert any(container_path in arg for arg in services["otel-collector"]["command"])
    config = yaml.safe_load((ROOT / host_path).read_text())
    traces = config["service"]["pipelines"]["traces"]
    assert "otlp" in traces["receivers"]
    for exporter in traces["exporters"]:
        endpoint = config["exporters"][exporter]["endpoint"]
        host = endpoint.split("://")[-1].split(":")[0]
        assert host in services, f"traces exporter {exporter} points at unknown host {host}"
    assert "4318" in services["collector"]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"]
