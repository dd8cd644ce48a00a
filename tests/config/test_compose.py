"""compose.yaml and the Dockerfile run modules, apps and commands that exist, in the topology we run at scale.

No Docker here: the files are parsed, and every name a command refers to is imported the way the container would.
"""

from __future__ import annotations

import fnmatch
import importlib
import importlib.util
import json
import re
import shlex
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from celery import Celery
from celery.app.utils import find_app
from daphne.cli import CommandLineInterface
from django.core.management import get_commands

ROOT = Path(__file__).resolve().parents[2]
APP_DIR = "/app"  # the Dockerfile's WORKDIR: the repository root inside the image
APP_SERVICES = ("web", "worker", "beat")
PYTHON = re.compile(r"^python(3(\.\d+)?)?$")


@cache
def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def services() -> dict[str, dict]:
    return compose()["services"]


def interpolate(value: str) -> str:
    """Compose's `${VAR:-default}` substitution with nothing set: defaults win, required values become `x`."""

    def one(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        operator, argument = match.group("op") or "", match.group("arg") or ""
        if operator in (":-", "-"):
            return interpolate(argument)
        return "x" if operator in (":?", "?") else ""

    return re.sub(r"\$\$|\$\{(?P<name>\w+)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}|\$(?P<bare>\w+)", one, value)


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {name: "" if value is None else str(value) for name, value in env.items()}


def built_services() -> dict[str, dict]:
    """The services whose image is built from our Dockerfile."""
    return {name: svc for name, svc in services().items() if "build" in svc}


def argv_lists(command: str | list[str]) -> list[list[str]]:
    """The programs a command runs: itself, or each step of an `sh -c "a && b"` script."""
    words = shlex.split(interpolate(command)) if isinstance(command, str) else [interpolate(w) for w in command]
    if words and Path(words[0]).name in ("sh", "bash") and "-c" in words:
        script = words[words.index("-c") + 1]
        steps = [shlex.split(step) for step in re.split(r"&&|\|\||;|\||\n", script)]
        return [step[1:] if step[:1] == ["exec"] else step for step in steps if step]
    return [words] if words else []


DAPHNE_PROGRAMS = ("daphne", "config.serve_daphne")  # Daphne's own command, or it on uvloop (same arguments)


def daphne_arguments(argv: list[str]) -> object:
    """Daphne's parsed arguments in a command running it (`daphne ...` or `python -m config.serve_daphne ...`)."""
    program, args = Path(argv[0]).name, argv[1:]
    if PYTHON.match(program) and "-m" in args:
        program, args = args[args.index("-m") + 1], args[args.index("-m") + 2:]
    assert program in DAPHNE_PROGRAMS, f"{argv} does not run Daphne"
    return CommandLineInterface().parser.parse_args(args)


def references(argv: list[str]) -> Iterator[tuple[str, str]]:
    """(kind, name) for every module, app or management command an argv names."""
    program, args = Path(argv[0]).name, argv[1:]
    if PYTHON.match(program):
        if "-m" in args:
            module = args[args.index("-m") + 1]
            yield "module", module
            yield from references([module, *args[args.index("-m") + 2:]])
        elif args and args[0].endswith("manage.py"):
            yield "manage.py", args[0]
            command = next((a for a in args[1:] if not a.startswith("-")), None)
            yield "management command", command or "(none)"
    elif program == "celery":
        for i, arg in enumerate(args):
            if arg in ("-A", "--app"):
                yield "celery app", args[i + 1]
            elif arg.startswith("--app="):
                yield "celery app", arg.split("=", 1)[1]
    elif program in DAPHNE_PROGRAMS:
        yield "asgi app", daphne_arguments(argv).application


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    text = (ROOT / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip())
            for line in joined.splitlines() if line.strip()]


def dockerfile_command() -> list[str]:
    """What a container of the image runs by default: ENTRYPOINT + CMD, exec or shell form."""
    found: dict[str, list[str]] = {}
    for instruction, arguments in dockerfile_instructions():
        if instruction in ("CMD", "ENTRYPOINT"):
            found[instruction] = json.loads(arguments) if arguments.startswith("[") else ["sh", "-c", arguments]
    return found.get("ENTRYPOINT", []) + found.get("CMD", [])


def all_references() -> list[tuple[str, str, str]]:
    refs = [("Dockerfile", kind, name) for argv in argv_lists(dockerfile_command()) for kind, name in references(argv)]
    for service_name, service in built_services().items():
        for key in ("entrypoint", "command"):
            for argv in argv_lists(service.get(key) or []):
                refs += [(service_name, kind, name) for kind, name in references(argv)]
    return refs


def check_reference(kind: str, name: str) -> None:
    """Raise AssertionError with a readable reason when `name` does not exist in the repository."""
    if kind == "module":
        assert importlib.util.find_spec(name) is not None, f"no module {name!r} to run with `python -m`"
    elif kind == "manage.py":
        path = Path(name)
        local = ROOT / path.relative_to(APP_DIR) if path.is_absolute() else ROOT / path
        assert local.is_file(), f"{name} is not in the repository (WORKDIR is {APP_DIR})"
    elif kind == "management command":
        assert name in get_commands(), f"`manage.py {name}`: no such management command"
    elif kind == "celery app":
        try:
            app = find_app(name, imp=importlib.import_module)
        except (ImportError, AttributeError) as exc:
            raise AssertionError(f"`celery -A {name}` finds no Celery app: {exc!r}") from exc
        assert isinstance(app, Celery), f"`celery -A {name}` resolves to {app!r}, not a Celery app"
    elif kind == "asgi app":
        module_name, _, attribute = name.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise AssertionError(f"daphne app {name!r}: cannot import {module_name!r}: {exc!r}") from exc
        assert attribute, f"daphne app {name!r} names no attribute (module:attribute)"
        assert callable(getattr(module, attribute, None)), f"daphne app {name!r}: {module_name} has no {attribute!r}"
    else:  # pragma: no cover
        raise AssertionError(f"unknown reference kind {kind}")


def replicas(service: dict) -> int:
    return int(interpolate(str((service.get("deploy") or {}).get("replicas", service.get("scale", 1)))))


def runs_beat(service: dict) -> bool:
    for key in ("entrypoint", "command"):
        for argv in argv_lists(service.get(key) or []):
            words = argv[2:] if argv[:2] in (["python", "-m"], ["python3", "-m"]) else argv
            if words and Path(words[0]).name == "celery" and (
                "beat" in words or ("worker" in words and ({"-B", "--beat"} & set(words)))
            ):
                return True
    return False


def depends_on(service: dict) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: "service_started" for name in deps}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def nginx_conf_mounts() -> list[tuple[Path, str]]:
    """(host file, container path) for every nginx config bind-mounted into a service."""
    mounts = []
    for service in services().values():
        for volume in service.get("volumes") or []:
            source, target = (volume["source"], volume["target"]) if isinstance(volume, dict) else volume.split(":")[:2]
            if target.startswith("/etc/nginx/"):
                mounts.append(((ROOT / source).resolve(), target))
    return mounts


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction, arguments in dockerfile_instructions():
        if instruction == "ENV":
            env.update(word.split("=", 1) for word in shlex.split(arguments) if "=" in word)
    return env


# --- The commands -------------------------------------------------------------------------------------------------


def test_services_built_from_the_dockerfile_have_a_command():
    assert (ROOT / "Dockerfile").is_file()
    built = built_services()
    assert set(APP_SERVICES) | {"migrate"} <= set(built), f"built services: {sorted(built)}"
    for name, service in built.items():
        context = service["build"] if isinstance(service["build"], str) else service["build"].get("context", ".")
        assert (ROOT / context / "Dockerfile").resolve() == (ROOT / "Dockerfile").resolve(), name
        assert service.get("command"), f"service {name!r} has no command: it would silently run the image's CMD"


def test_every_command_names_something_checkable():
    """A command the checks below cannot read (say a bare `$CMD`) would pass them without being checked."""
    checked = {where for where, _kind, _name in all_references()}
    assert checked >= set(built_services()) | {"Dockerfile"}, f"unchecked: {set(built_services()) - checked}"


@pytest.mark.parametrize(("where", "kind", "name"), all_references(), ids=lambda v: str(v).replace(" ", "-"))
def test_command_names_what_exists(where, kind, name):
    check_reference(kind, name)


def test_a_renamed_module_is_caught():
    """The checks fail for names that do not exist (so they are not vacuous)."""
    bad = [
        ("module", "daphnee"),
        ("manage.py", "/app/manage_.py"),
        ("management command", "bootstrapp"),
        ("celery app", "configg"),
        ("celery app", "config.settings"),
        ("asgi app", "config.asgii:application"),
        ("asgi app", "config.asgi:app"),
    ]
    for kind, name in bad:
        with pytest.raises(AssertionError):
            check_reference(kind, name)


def test_the_image_runs_daphne_on_the_asgi_app_by_default():
    refs = [(kind, name) for argv in argv_lists(dockerfile_command()) for kind, name in references(argv)]
    assert ("asgi app", "config.asgi:application") in refs, dockerfile_command()


def test_the_image_environment_points_at_the_source_roots():
    env = dockerfile_env()
    workdir = [arguments for instruction, arguments in dockerfile_instructions() if instruction == "WORKDIR"]
    assert workdir[-1:] == [APP_DIR]
    for entry in env["PYTHONPATH"].split(":"):
        assert (ROOT / Path(entry).relative_to(APP_DIR)).is_dir(), f"PYTHONPATH entry {entry} is not in the repo"
    assert f"{APP_DIR}/platform" in env["PYTHONPATH"].split(":"), "platform/ must be a source root"
    assert importlib.util.find_spec(env["DJANGO_SETTINGS_MODULE"]) is not None


# --- The topology -------------------------------------------------------------------------------------------------


def test_web_runs_at_least_two_replicas():
    assert replicas(services()["web"]) >= 2


def test_exactly_one_beat():
    beats = {name: replicas(svc) for name, svc in services().items() if runs_beat(svc)}
    assert beats == {"beat": 1}, f"services running celery beat, with replicas: {beats}"


@pytest.mark.parametrize(("name", "probe"), [("postgres", "pg_isready"), ("redis", "redis-cli")])
def test_datastores_have_health_checks(name, probe):
    check = services()[name].get("healthcheck") or {}
    test = check.get("test")
    assert test and not check.get("disable") and test != ["NONE"], f"{name} has no health check"
    assert probe in (test if isinstance(test, str) else " ".join(test))


def test_dependencies_exist_and_can_be_waited_for():
    all_services = services()
    for name, service in all_services.items():
        for target, condition in depends_on(service).items():
            assert target in all_services, f"{name} depends on {target!r}, which is not a service"
            if condition == "service_healthy":
                assert all_services[target].get("healthcheck"), f"{name} waits for {target} healthy: no health check"
            if condition == "service_completed_successfully":
                assert all_services[target].get("restart", "no") == "no", f"{target} is one-shot: restart must be no"


def test_app_services_wait_for_migrations():
    for name in APP_SERVICES:
        assert depends_on(services()[name]).get("migrate") == "service_completed_successfully", name
    assert depends_on(services()["migrate"]).get("postgres") == "service_healthy"
    assert depends_on(services()["web"]).get("redis") == "service_healthy"


@pytest.mark.parametrize("name", [*APP_SERVICES, "migrate"])
def test_app_services_use_postgres_and_redis(name):
    env = environment(services()[name])
    database = urlsplit(interpolate(env.get("DATABASE_URL", "")))
    redis = urlsplit(interpolate(env.get("REDIS_URL", "")))
    assert database.scheme.startswith("postgres"), f"{name}: DATABASE_URL={env.get('DATABASE_URL')!r}"
    assert database.hostname in services(), f"{name}: DATABASE_URL host {database.hostname!r} is not a service"
    assert redis.scheme == "redis", f"{name}: REDIS_URL={env.get('REDIS_URL')!r}"
    assert redis.hostname in services(), f"{name}: REDIS_URL host {redis.hostname!r} is not a service"


@pytest.mark.parametrize("secret", ["DJANGO_SECRET_KEY", "UPSTREAM_KEY_SECRET"])
def test_replicas_share_secrets_from_the_operator(secret):
    """Unset, settings generate a secret per container, so replicas would disagree (sessions, stored keys)."""
    values = {environment(services()[name]).get(secret) for name in [*APP_SERVICES, "migrate"]}
    assert len(values) == 1, f"{secret} differs between services: {values}"
    value = values.pop()
    assert value and re.fullmatch(rf"\$\{{{secret}:\?.+\}}", value), f"{secret} must be a required variable: {value!r}"


def test_only_the_proxy_publishes_a_port():
    published = {name for name, svc in services().items() if svc.get("ports")}
    assert published == {"proxy"}, "replicas cannot share a host port; publish through the proxy"
    assert interpolate(str(services()["proxy"]["ports"][0])).endswith(":80")


def test_the_proxy_streams_and_upgrades():
    mounts = nginx_conf_mounts()
    assert mounts, "no nginx config is mounted"
    daphne_port = daphne_arguments(argv_lists(services()["web"]["command"])[0]).port
    for path, _target in mounts:
        assert path.is_file(), f"{path} is mounted but missing"
        conf = re.sub(r"#.*", "", path.read_text())
        assert re.search(r"proxy_buffering\s+off;", conf), "SSE needs proxy_buffering off"
        assert re.search(r"proxy_read_timeout\s+\d{3,}s?;", conf), "long generations need a long proxy_read_timeout"
        assert re.search(r"proxy_set_header\s+Upgrade\s+\$http_upgrade;", conf), "WebSockets need the Upgrade header"
        assert re.search(r"proxy_set_header\s+Connection\s+\$connection_upgrade;", conf)
        assert re.search(r"map\s+\$http_upgrade\s+\$connection_upgrade", conf)
        assert re.search(r"proxy_http_version\s+1\.1;", conf)
        assert re.search(rf"server\s+web:{daphne_port}\b", conf), f"the proxy must balance to web:{daphne_port}"


def test_web_health_check_asks_the_readiness_endpoint():
    test = services()["web"]["healthcheck"]["test"]
    script = test if isinstance(test, str) else " ".join(test)
    daphne_port = daphne_arguments(argv_lists(services()["web"]["command"])[0]).port
    assert "urllib" in script, "slim images have no curl: probe with python's urllib"
    assert f"127.0.0.1:{daphne_port}/readyz" in script


def test_the_readiness_endpoint_answers_anonymously_on_any_host(live):
    """Without it every web replica is unhealthy and the proxy never starts."""
    import httpx

    assert httpx.get(live.url + "/readyz", headers={"host": "whatever.internal"}).status_code == 200


def test_web_stops_later_than_the_relay_grace_period():
    from django.conf import settings

    grace = services()["web"].get("stop_grace_period", "10s")
    assert int(str(grace).rstrip("s")) > settings.RELAY_SHUTDOWN_GRACE_SECONDS


# --- The build context --------------------------------------------------------------------------------------------


def test_dockerignore_keeps_secrets_and_state_out_but_the_app_in():
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]

    def ignored(path: str) -> bool:
        return any(fnmatch.fnmatch(path, p.lstrip("/")) or path.startswith(p.rstrip("/") + "/") for p in patterns)

    for path in (".env", ".git", ".venv", "var"):
        assert ignored(path), f"{path} would be copied into the image"
    for path in ("manage.py", "requirements.lock", "platform", "relay", "billing", "tokens", "templates", "static"):
        assert not ignored(path), f"{path} is needed in the image but ignored"
