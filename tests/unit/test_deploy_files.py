"""Static checks of the container setup: docker-compose.yml, the Qdrant cluster compose file, the three
service Dockerfiles, .dockerignore and deploy/env.example.

None of this needs a Docker engine (CI has none): the files are parsed and cross-checked against each
other, against the `musicrec` argument parser and against the services' settings classes. The one
test that runs `docker compose config` skips itself when no Compose v2 is installed.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import shutil
import subprocess
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
CLUSTER_COMPOSE_FILE = ROOT / "deploy" / "qdrant-cluster" / "docker-compose.yml"
ENV_EXAMPLE = ROOT / "deploy" / "env.example"
DOCKERIGNORE = ROOT / ".dockerignore"

APP_PORTS = {"catalog": 50051, "ingestor": 50052, "recommender": 50053}
APPS = tuple(APP_PORTS)
CORE_SERVICES = frozenset({"postgres", "qdrant", *APPS})
TOOL_SERVICES = {"ingest": "ingestor"}  # one-shot `tools` profile job -> the image it reuses

# What each long-running service must wait for (healthy).
EXPECTED_DEPENDENCIES = {
    "catalog": {"postgres"},
    "ingestor": {"catalog", "qdrant"},
    "recommender": {"catalog", "qdrant"},
    "ingest": {"ingestor"},
}

# The runtime contract: the only variables a container may be configured with. A typo here or in the
# compose file would be silently ignored by pydantic-settings, hence the exact comparison.
CONTRACT_ENV = frozenset(
    {
        "MUSICREC_DATA_DIR",
        "MUSICREC_LOG_LEVEL",
        "MUSICREC_LOG_FORMAT",
        "MUSICREC_CATALOG_HOST",
        "MUSICREC_CATALOG_PORT",
        "MUSICREC_CATALOG_DATABASE_URL",
        "MUSICREC_INGESTOR_HOST",
        "MUSICREC_INGESTOR_PORT",
        "MUSICREC_INGESTOR_CATALOG_ADDRESS",
        "MUSICREC_INGESTOR_QDRANT_URL",
        "MUSICREC_INGESTOR_QDRANT_API_KEY",
        "MUSICREC_INGESTOR_QDRANT_COLLECTION",
        "MUSICREC_RECOMMENDER_HOST",
        "MUSICREC_RECOMMENDER_PORT",
        "MUSICREC_RECOMMENDER_CATALOG_ADDRESS",
        "MUSICREC_RECOMMENDER_QDRANT_URL",
        "MUSICREC_RECOMMENDER_QDRANT_API_KEY",
        "MUSICREC_RECOMMENDER_QDRANT_COLLECTION",
    }
)
SHARED_ENV = frozenset({"MUSICREC_DATA_DIR", "MUSICREC_LOG_LEVEL", "MUSICREC_LOG_FORMAT"})

# Variables read with os.environ rather than a settings class (documented in env.example too).
NON_SETTINGS_ENV = frozenset(
    {
        "MUSICREC_INGESTOR_ADDRESS",  # musicrec_cli.main: default --ingestor of `musicrec ingest`
        "MUSICREC_RECOMMENDER_ADDRESS",  # musicrec_cli.main: default --recommender of `musicrec recommend`
        "MUSICREC_DATABASE_URL",  # services/catalog/.../migrations/env.py: Alembic run by hand
    }
)

SERVICE_MARKER = "# ---- service-specific"
# Files under a COPY'd folder that the image needs (code, project files, packaged data, migrations).
NEEDED_SUFFIXES = frozenset({".py", ".toml", ".txt", ".mako", ".json"})
INTERPOLATION = re.compile(r"(?<!\$)\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}")


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------


@cache
def _compose(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), f"{path} is not a YAML mapping"
    return data


def _services(path: Path = COMPOSE_FILE) -> dict[str, dict[str, Any]]:
    services = _compose(path).get("services")
    assert isinstance(services, dict), f"{path}: services is not a mapping"
    assert services, f"{path} defines no services"
    return services


def _with_defaults(value: object) -> str:
    """`value` as compose would see it with no variables set: ${X:-default} -> default, $$ -> $."""

    def replace(match: re.Match[str]) -> str:
        op = match.group("op") or ""
        return match.group("arg") if op.endswith("-") else ""

    return INTERPOLATION.sub(replace, str(value)).replace("$$", "$")


def _environment(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.split("=", 1) if "=" in item else (item, "") for item in env)
        return {key: _with_defaults(val) for key, val in pairs}
    return {str(key): _with_defaults(val) for key, val in env.items()}


@dataclass(frozen=True)
class PublishedPort:
    host_ip: str
    host_port: str
    container_port: int


def _ports(service: Mapping[str, Any]) -> list[PublishedPort]:
    result = []
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            result.append(
                PublishedPort(
                    str(entry.get("host_ip", "")), str(entry.get("published", "")), int(entry["target"])
                )
            )
            continue
        spec = _with_defaults(entry).split("/", 1)[0]
        parts = spec.rsplit(":", 2)
        if len(parts) == 3:
            result.append(PublishedPort(parts[0], parts[1], int(parts[2])))
        elif len(parts) == 2:
            result.append(PublishedPort("", parts[0], int(parts[1])))
        else:
            result.append(PublishedPort("", "", int(parts[0])))
    return result


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    read_only: bool


def _mounts(service: Mapping[str, Any]) -> list[Mount]:
    result = []
    for entry in service.get("volumes") or []:
        if isinstance(entry, dict):
            result.append(
                Mount(str(entry.get("source", "")), str(entry["target"]), bool(entry.get("read_only")))
            )
            continue
        parts = _with_defaults(entry).split(":")
        mode = parts[2] if len(parts) > 2 else ""
        result.append(Mount(parts[0], parts[1], "ro" in mode.split(",")))
    return result


def _healthcheck_argv(service: Mapping[str, Any]) -> list[str]:
    test = service["healthcheck"]["test"]
    if isinstance(test, str):
        return ["CMD-SHELL", test]
    return [str(part) for part in test]


def _depends_on(service: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):  # short form: no condition, i.e. service_started
        return {name: {} for name in deps}
    return {str(name): dict(spec or {}) for name, spec in deps.items()}


@cache
def _parser() -> argparse.ArgumentParser:
    from musicrec_cli.main import build_parser

    return build_parser()


def _parse(argv: list[str]) -> argparse.Namespace:
    """Parse a container's argv the way the image runs it: `musicrec` first, then the arguments."""
    assert argv[:1] == ["musicrec"], f"{argv} does not run the musicrec command"
    return _parser().parse_args(argv[1:])


# ---- Dockerfiles ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def _dockerfile_path(app: str) -> Path:
    return ROOT / "services" / app / "Dockerfile"


def _instructions(text: str) -> list[Instruction]:
    """Dockerfile instructions in order: comment lines dropped, continuation lines joined."""
    result: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        result.append(Instruction(keyword.upper(), " ".join(args.split())))
    assert not pending, "the Dockerfile ends inside a continued line"
    return result


def _final_stage(instructions: list[Instruction]) -> list[Instruction]:
    last_from = max(i for i, ins in enumerate(instructions) if ins.keyword == "FROM")
    return instructions[last_from:]


def _json_argv(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list), f"not an exec-form list: {args}"
    assert all(isinstance(v, str) for v in value), f"not a list of strings: {args}"
    return value


def _dockerfile_env(stage: list[Instruction]) -> dict[str, str]:
    env: dict[str, str] = {}
    for ins in stage:
        if ins.keyword != "ENV":
            continue
        tokens = shlex.split(ins.args)
        if tokens and "=" not in tokens[0]:  # legacy `ENV KEY value`
            env[tokens[0]] = " ".join(tokens[1:])
            continue
        for token in tokens:
            key, _, value = token.partition("=")
            env[key] = value
    return env


def _copy_sources(instructions: list[Instruction]) -> Iterator[str]:
    """Source paths of every COPY/ADD that reads the build context (not another stage or image)."""
    for ins in instructions:
        if ins.keyword not in {"COPY", "ADD"}:
            continue
        tokens = _json_argv(ins.args) if ins.args.startswith("[") else shlex.split(ins.args)
        flags = [t for t in tokens if t.startswith("--")]
        if any(flag.startswith("--from") for flag in flags):
            continue
        paths = [t for t in tokens if not t.startswith("--")]
        assert len(paths) >= 2, f"{ins.keyword} {ins.args}: needs a source and a destination"
        yield from paths[:-1]


# ---- .dockerignore (the subset of Docker's pattern rules that this repository uses) ----------------


def _ignore_regex(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
            continue
        if pattern.startswith("**", i):
            out, i = out + ".*", i + 2
            continue
        if char == "*":
            out += "[^/]*"
        elif char == "?":
            out += "[^/]"
        elif char == "[":
            end = pattern.index("]", i)
            out += pattern[i : end + 1]
            i = end
        else:
            out += re.escape(char)
        i += 1
    return re.compile(out)


@cache
def _ignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for raw in DOCKERIGNORE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = str(PurePosixPath(line.lstrip("!").strip().lstrip("/")))
        rules.append((negate, _ignore_regex(pattern)))
    return rules


def _ignored(path: str) -> bool:
    """Whether Docker leaves `path` (relative to the context) out: the last matching rule wins, and a
    rule that matches a directory matches everything below it."""
    parts = PurePosixPath(path).parts
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for negate, regex in _ignore_rules():
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            ignored = not negate
    return ignored


def _workspace_members() -> list[str]:
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())
    members = root["tool"]["uv"]["workspace"]["members"]
    assert members, "the root pyproject.toml lists no workspace members"
    return [str(m) for m in members]


# --------------------------------------------------------------------------------------------------
# docker-compose.yml
# --------------------------------------------------------------------------------------------------


def test_compose_defines_the_five_services_and_only_tools_besides() -> None:
    services = _services()
    assert services.keys() >= CORE_SERVICES
    for name, service in services.items():
        if name in CORE_SERVICES:
            assert "profiles" not in service, f"{name} must start with a plain `docker compose up`"
        else:
            assert name in TOOL_SERVICES, f"unexpected service {name}"
            assert service.get("profiles") == ["tools"], f"{name} must be opt-in (profile tools)"


def test_every_service_has_a_healthcheck() -> None:
    for name, service in _services().items():
        healthcheck = service.get("healthcheck")
        assert isinstance(healthcheck, dict), f"{name} has no healthcheck"
        if name in TOOL_SERVICES:
            # A one-shot job runs no server: the image's own HEALTHCHECK must be switched off.
            assert healthcheck.get("disable") is True, f"{name} must disable the image's healthcheck"
            continue
        assert not healthcheck.get("disable"), f"{name} disables its healthcheck"
        argv = _healthcheck_argv(service)
        assert argv[0] in {"CMD", "CMD-SHELL"}, f"{name}: bad healthcheck test {argv}"
        assert len(argv) > 1, f"{name}: empty healthcheck test"


def test_dependencies_wait_until_healthy() -> None:
    services = _services()
    for name, expected in EXPECTED_DEPENDENCIES.items():
        deps = _depends_on(services[name])
        assert set(deps) == expected, f"{name} depends on {sorted(deps)}, expected {sorted(expected)}"
        for dep, spec in deps.items():
            assert spec.get("condition") == "service_healthy", (
                f"{name} -> {dep} must wait for service_healthy"
            )
    for name in ("postgres", "qdrant"):
        assert not _depends_on(services[name]), f"{name} should depend on nothing"


def test_long_running_services_restart_unless_stopped() -> None:
    for name in CORE_SERVICES:
        assert _services()[name].get("restart") == "unless-stopped", name


def test_postgres_and_qdrant_keep_data_in_declared_named_volumes() -> None:
    services = _services()
    declared = set((_compose(COMPOSE_FILE).get("volumes") or {}).keys())
    expected_targets = {
        # PostgreSQL 18+ images keep PGDATA in /var/lib/postgresql/<major>/docker: mount the parent.
        "postgres": "/var/lib/postgresql",
        "qdrant": "/qdrant/storage",
    }
    for name, target in expected_targets.items():
        mounts = {m.target: m for m in _mounts(services[name])}
        assert target in mounts, f"{name} does not mount a volume at {target}"
        source = mounts[target].source
        assert source in declared, f"{name}: volume {source!r} is not declared under top-level volumes"


def test_images_are_pinned() -> None:
    services = _services()
    assert services["postgres"]["image"] == "postgres:18"
    qdrant_image = services["qdrant"]["image"]
    assert re.fullmatch(r"qdrant/qdrant:v\d+\.\d+\.\d+", qdrant_image), qdrant_image
    for node in _services(CLUSTER_COMPOSE_FILE).values():
        assert node["image"] == qdrant_image, "the cluster should run the same Qdrant release as the stack"


def test_infrastructure_healthchecks_use_what_the_images_ship() -> None:
    services = _services()
    postgres = " ".join(_healthcheck_argv(services["postgres"]))
    assert "pg_isready" in postgres
    for name, service in [("qdrant", services["qdrant"]), *_services(CLUSTER_COMPOSE_FILE).items()]:
        argv = _healthcheck_argv(service)
        probe = " ".join(argv)
        # The qdrant image has bash but neither curl nor wget.
        assert argv[:3] == ["CMD", "bash", "-c"], f"{name}: {argv}"
        assert "/dev/tcp/127.0.0.1/6333" in probe, f"{name}: {probe}"
        assert "/readyz" in probe, f"{name}: {probe}"
        assert "curl" not in probe, f"{name}: {probe}"
        assert "wget" not in probe, f"{name}: {probe}"


@pytest.mark.parametrize(
    "compose_file", [COMPOSE_FILE, CLUSTER_COMPOSE_FILE], ids=["stack", "qdrant-cluster"]
)
def test_published_ports_listen_on_loopback_only(compose_file: Path) -> None:
    for name, service in _services(compose_file).items():
        for port in _ports(service):
            assert port.host_ip == "127.0.0.1", f"{name} publishes {port} beyond 127.0.0.1"


def test_app_ports_match_the_contract() -> None:
    services = _services()
    for app, port in APP_PORTS.items():
        published = _ports(services[app])
        assert [(p.host_port, p.container_port) for p in published] == [(str(port), port)], app
        assert _environment(services[app])[f"MUSICREC_{app.upper()}_PORT"] == str(port)


def test_app_environment_uses_only_contract_variables() -> None:
    services = _services()
    for name in (*APPS, *TOOL_SERVICES):
        env = _environment(services[name])
        unknown = set(env) - CONTRACT_ENV
        assert not unknown, f"{name} sets variables outside the contract (typo?): {sorted(unknown)}"
        own_prefix = f"MUSICREC_{name.upper()}_"
        foreign = {k for k in env if k not in SHARED_ENV and not k.startswith(own_prefix)}
        assert not foreign, f"{name} sets another service's variables: {sorted(foreign)}"


def test_app_environment_points_at_the_compose_services() -> None:
    services = _services()
    postgres_env = _environment(services["postgres"])
    for app in APPS:
        env = _environment(services[app])
        prefix = f"MUSICREC_{app.upper()}_"
        assert env[prefix + "HOST"] == "0.0.0.0", f"{app} must listen on all interfaces in its container"
        if app == "catalog":
            url = urlsplit(env[prefix + "DATABASE_URL"])
            assert url.scheme == "postgresql"
            assert (url.hostname, url.port) == ("postgres", 5432)
            assert url.username == postgres_env["POSTGRES_USER"]
            assert url.password == postgres_env["POSTGRES_PASSWORD"]
            assert url.path == "/" + postgres_env["POSTGRES_DB"]
            continue
        assert env[prefix + "CATALOG_ADDRESS"] == f"catalog:{APP_PORTS['catalog']}"
        qdrant = urlsplit(env[prefix + "QDRANT_URL"])
        assert (qdrant.scheme, qdrant.hostname, qdrant.port) == ("http", "qdrant", 6333)
    collections = {
        _environment(services[a])[f"MUSICREC_{a.upper()}_QDRANT_COLLECTION"]
        for a in ("ingestor", "recommender")
    }
    assert collections == {"tracks"}, "the ingestor and the recommender must use the same collection"


def test_contract_variables_are_real_settings() -> None:
    """Every contract variable is read by a settings class (pydantic-settings ignores unknown ones)."""
    known = _settings_env_names()
    assert known >= CONTRACT_ENV, f"not read by any settings class: {sorted(CONTRACT_ENV - known)}"


def _settings_env_names() -> set[str]:
    from musicrec_catalog.settings import CatalogSettings
    from musicrec_cli.stack import IndexSettings
    from musicrec_common.settings import CommonSettings
    from musicrec_ingestor.settings import IngestorSettings
    from musicrec_recommender.settings import RecommenderSettings

    names = set()
    for settings in (CommonSettings, CatalogSettings, IngestorSettings, RecommenderSettings, IndexSettings):
        prefix = settings.model_config.get("env_prefix", "")
        names |= {f"{prefix}{field}".upper() for field in settings.model_fields}
    return names


@pytest.mark.parametrize("app", APPS)
def test_app_command_selects_its_service(app: str) -> None:
    service = _services()[app]
    entrypoint = service.get("entrypoint") or _json_argv(_dockerfile_arg(app, "ENTRYPOINT"))
    command = service["command"]
    assert isinstance(command, list), f"{app}: use the exec (list) form for command"
    args = _parse([*entrypoint, *command])
    assert args.command == "serve"
    assert args.service == app


@pytest.mark.parametrize("app", APPS)
def test_app_healthcheck_runs_musicrec_health_on_its_port(app: str) -> None:
    argv = _healthcheck_argv(_services()[app])
    assert argv[0] == "CMD", f"{app}: exec form, no shell needed"
    args = _parse(argv[1:])
    assert args.command == "health"
    assert args.address == f"127.0.0.1:{APP_PORTS[app]}"


def test_ingest_tool_ingests_the_ingestors_corpus_mount() -> None:
    services = _services()
    tool = services["ingest"]
    assert tool.get("image") == services["ingestor"].get("image"), "the tool should reuse the ingestor image"
    assert tool.get("build") == services["ingestor"].get("build")
    entrypoint = tool.get("entrypoint") or _json_argv(_dockerfile_arg("ingestor", "ENTRYPOINT"))
    args = _parse([*entrypoint, *tool["command"]])
    assert args.command == "ingest"
    assert args.ingestor == f"ingestor:{APP_PORTS['ingestor']}"
    ingestor_mounts = {m.target: m for m in _mounts(services["ingestor"])}
    for path in args.paths:
        # The ingestor opens the paths itself, so they must exist inside the ingestor container.
        mount = next((m for t, m in ingestor_mounts.items() if path.is_relative_to(t)), None)
        assert mount is not None, f"{path} is not under any of the ingestor's mounts"
        assert mount.read_only, f"the corpus mount {mount.target} should be read-only"


def test_the_parser_rejects_what_compose_must_not_say() -> None:
    """Guards the tests above: a parse that succeeds means something."""
    for argv in (["musicrec", "no-such-command"], ["musicrec", "serve", "catalgo"], ["musicrec", "health"]):
        with pytest.raises(SystemExit):
            _parse(argv)


# --------------------------------------------------------------------------------------------------
# deploy/qdrant-cluster/docker-compose.yml
# --------------------------------------------------------------------------------------------------


def test_qdrant_cluster_has_three_peers_bootstrapping_from_the_first() -> None:
    nodes = _services(CLUSTER_COMPOSE_FILE)
    assert len(nodes) >= 3, "a resilient Qdrant cluster needs at least three nodes"
    first = [name for name, node in nodes.items() if "--bootstrap" not in node["command"]]
    assert len(first) == 1, f"exactly one peer starts the cluster, got {first}"
    for name, node in nodes.items():
        env = _environment(node)
        assert env["QDRANT__CLUSTER__ENABLED"] == "true", name
        assert env.get("QDRANT__CLUSTER__P2P__PORT", "6335") == "6335", name
        command = [str(c) for c in node["command"]]
        assert command[0] == "./qdrant", name
        uri = urlsplit(command[command.index("--uri") + 1])
        assert (uri.hostname, uri.port) == (name, 6335), f"{name} must announce its own p2p address"
        if name not in first:
            bootstrap = urlsplit(command[command.index("--bootstrap") + 1])
            assert (bootstrap.hostname, bootstrap.port) == (first[0], 6335), name
            assert _depends_on(node).get(first[0], {}).get("condition") == "service_healthy", name
        assert all(p.container_port != 6335 for p in _ports(node)), f"{name} publishes the p2p port"
        assert "healthcheck" in node, name


def test_qdrant_cluster_nodes_have_their_own_declared_volumes() -> None:
    declared = set((_compose(CLUSTER_COMPOSE_FILE).get("volumes") or {}).keys())
    sources = []
    for name, node in _services(CLUSTER_COMPOSE_FILE).items():
        storage = [m.source for m in _mounts(node) if m.target == "/qdrant/storage"]
        assert len(storage) == 1, f"{name} has no /qdrant/storage volume"
        assert storage[0] in declared, f"{name}: volume {storage[0]!r} is not declared"
        sources.append(storage[0])
    assert len(set(sources)) == len(sources), "each peer needs its own storage"


def test_qdrant_cluster_collection_defaults_replicate_and_spread() -> None:
    nodes = _services(CLUSTER_COMPOSE_FILE)
    defaults = {
        tuple(sorted((k, v) for k, v in _environment(n).items() if "__COLLECTION__" in k))
        for n in nodes.values()
    }
    assert len(defaults) == 1, "every peer must carry the same collection defaults"
    env = dict(next(iter(defaults)))
    shards = int(env["QDRANT__STORAGE__COLLECTION__SHARD_NUMBER"])
    replication = int(env["QDRANT__STORAGE__COLLECTION__REPLICATION_FACTOR"])
    write_consistency = int(env["QDRANT__STORAGE__COLLECTION__WRITE_CONSISTENCY_FACTOR"])
    assert shards % len(nodes) == 0, "shard_number should be a multiple of the node count"
    assert 2 <= replication <= len(nodes)
    assert 1 <= write_consistency <= replication


# --------------------------------------------------------------------------------------------------
# Dockerfiles and .dockerignore
# --------------------------------------------------------------------------------------------------


@cache
def _dockerfile(app: str) -> list[Instruction]:
    path = _dockerfile_path(app)
    assert path.is_file(), f"{path} is missing"
    return _instructions(path.read_text())


def _dockerfile_arg(app: str, keyword: str) -> str:
    found = [ins.args for ins in _final_stage(_dockerfile(app)) if ins.keyword == keyword]
    assert found, f"services/{app}/Dockerfile has no {keyword} in its final stage"
    return found[-1]


@pytest.mark.parametrize("app", APPS)
def test_compose_builds_each_app_from_its_dockerfile(app: str) -> None:
    build = _services()[app]["build"]
    assert build == {"context": ".", "dockerfile": f"services/{app}/Dockerfile"}


@pytest.mark.parametrize("app", APPS)
def test_dockerfile_is_multi_stage_and_runs_as_non_root(app: str) -> None:
    instructions = _dockerfile(app)
    assert sum(ins.keyword == "FROM" for ins in instructions) >= 2, "expected a builder and a runtime stage"
    user = _dockerfile_arg(app, "USER")
    assert user.split(":")[0] not in {"root", "0", ""}, f"final stage runs as {user!r}"


@pytest.mark.parametrize("app", APPS)
def test_dockerfile_exposes_the_port_compose_maps(app: str) -> None:
    exposed = {int(p.split("/")[0]) for p in _dockerfile_arg(app, "EXPOSE").split()}
    mapped = {p.container_port for p in _ports(_services()[app])}
    assert exposed == mapped == {APP_PORTS[app]}


@pytest.mark.parametrize("app", APPS)
def test_dockerfile_default_command_healthcheck_and_listener(app: str) -> None:
    argv = [*_json_argv(_dockerfile_arg(app, "ENTRYPOINT")), *_json_argv(_dockerfile_arg(app, "CMD"))]
    args = _parse(argv)
    assert (args.command, args.service) == ("serve", app)

    healthcheck = _dockerfile_arg(app, "HEALTHCHECK")
    _, sep, probe = healthcheck.partition("CMD ")
    assert sep, f"HEALTHCHECK without CMD: {healthcheck}"
    health = _parse(_json_argv(probe))
    assert (health.command, health.address) == ("health", f"127.0.0.1:{APP_PORTS[app]}")

    assert _dockerfile_arg(app, "STOPSIGNAL") == "SIGTERM"
    env = _dockerfile_env(_final_stage(_dockerfile(app)))
    musicrec_env = {k for k in env if k.startswith("MUSICREC_")}
    assert musicrec_env <= CONTRACT_ENV, f"unknown variables: {sorted(musicrec_env - CONTRACT_ENV)}"
    assert env[f"MUSICREC_{app.upper()}_HOST"] == "0.0.0.0"


def test_dockerfiles_share_one_body() -> None:
    bodies = {}
    for app in APPS:
        text = _dockerfile_path(app).read_text()
        assert text.count(SERVICE_MARKER) == 1, f"services/{app}/Dockerfile: marker missing or repeated"
        bodies[app] = text.split(SERVICE_MARKER)[0]
    assert len(set(bodies.values())) == 1, "the three Dockerfiles differ above the service-specific marker"


@pytest.mark.parametrize("app", APPS)
def test_dockerfile_copies_exist_and_reach_the_build_context(app: str) -> None:
    sources = list(_copy_sources(_dockerfile(app)))
    assert sources
    for source in sources:
        path = ROOT / source
        assert path.exists(), f"COPY {source}: no such path in the repository"
        assert not _ignored(source.rstrip("/")), f"COPY {source}: excluded by .dockerignore"
        if path.is_dir():
            for file in path.rglob("*"):
                relative = file.relative_to(ROOT).as_posix()
                if file.suffix in NEEDED_SUFFIXES and "__pycache__" not in file.parts:
                    assert not _ignored(relative), f"{relative} is needed but excluded by .dockerignore"


@pytest.mark.parametrize("app", APPS)
def test_dockerfile_installs_the_locked_cli_package(app: str) -> None:
    instructions = _dockerfile(app)
    copied = set(_copy_sources(instructions))
    # `uv sync --frozen` needs every member's pyproject.toml, before the sources are copied.
    for member in ("pyproject.toml", "uv.lock", *(f"{m}/pyproject.toml" for m in _workspace_members())):
        assert member in copied, f"the dependency layer does not copy {member}"
    cli = tomllib.loads((ROOT / "cli" / "pyproject.toml").read_text())["project"]
    assert "musicrec" in cli.get("scripts", {}), "the cli package no longer provides the musicrec command"
    syncs = [ins.args for ins in instructions if ins.keyword == "RUN" and "uv sync" in ins.args]
    assert syncs, "no `uv sync` step"
    for sync in syncs:
        for flag in ("--frozen", "--no-dev", f"--package {cli['name']}"):
            assert flag in sync, f"`{sync}` lacks {flag}"


def test_dockerignore_keeps_local_clutter_out() -> None:
    for path in (".git", ".venv", "corpus", "tests", "libs/common/src/musicrec_common/__pycache__"):
        assert _ignored(path), f"{path} would be sent to the Docker daemon"
    for path in ("pyproject.toml", "uv.lock", "cli/src/musicrec_cli/main.py"):
        assert not _ignored(path), path


# --------------------------------------------------------------------------------------------------
# deploy/env.example
# --------------------------------------------------------------------------------------------------


def _documented_env() -> set[str]:
    pattern = re.compile(r"^#?([A-Z][A-Z0-9_]*)=")
    return {m.group(1) for line in ENV_EXAMPLE.read_text().splitlines() if (m := pattern.match(line.strip()))}


def test_env_example_documents_every_setting_and_compose_variable() -> None:
    documented = _documented_env()
    settings = _settings_env_names()
    compose_vars = {m.group("name") for m in INTERPOLATION.finditer(COMPOSE_FILE.read_text())}
    assert settings <= documented, f"undocumented settings: {sorted(settings - documented)}"
    assert compose_vars <= documented, f"undocumented compose variables: {sorted(compose_vars - documented)}"
    assert documented >= NON_SETTINGS_ENV
    unknown = documented - settings - compose_vars - NON_SETTINGS_ENV
    assert not unknown, f"env.example documents variables nothing reads (typo?): {sorted(unknown)}"


# --------------------------------------------------------------------------------------------------
# docker compose config (validates the files without an engine)
# --------------------------------------------------------------------------------------------------


def _compose_cli() -> list[str] | None:
    """`docker compose` when the plugin is installed, else a standalone Compose v2 binary, else None."""
    candidates = []
    if shutil.which("docker"):
        candidates.append(["docker", "compose"])
    if shutil.which("docker-compose"):
        candidates.append(["docker-compose"])
    for candidate in candidates:
        probe = subprocess.run([*candidate, "version", "--short"], capture_output=True, text=True, timeout=60)
        if probe.returncode == 0 and probe.stdout.strip().lstrip("v").startswith("2."):
            return candidate
    return None


@pytest.mark.parametrize(
    ("compose_file", "extra"),
    [(COMPOSE_FILE, []), (COMPOSE_FILE, ["--profile", "tools"]), (CLUSTER_COMPOSE_FILE, [])],
    ids=["stack", "stack-tools", "qdrant-cluster"],
)
def test_docker_compose_config_accepts_the_file(compose_file: Path, extra: list[str]) -> None:
    cli = _compose_cli()
    if cli is None:
        pytest.skip("Docker Compose v2 is not installed (no `docker compose` plugin, no docker-compose v2)")
    result = subprocess.run(
        [*cli, "-f", str(compose_file), *extra, "config", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
