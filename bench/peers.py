"""Other gateways measured beside Modelgate (`make bench-peers`): LiteLLM's proxy and Portkey's gateway.

Each is installed from its own registry into bench/.peers/ (git-ignored) the first time, at a pinned version, and
started on a free port in front of the same fake upstreams, with no database and no cache. Installing again is
skipped while the marker file matches what would be installed. Any failure raises `PeerUnavailable` with the reason,
so the benchmark can say so and go on with the other targets.

    .venv/bin/python bench/peers.py install     # install both (what the bench does on its own)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.processes import Processes, start_server  # noqa: E402

PEERS_DIR = ROOT / "bench" / ".peers"

# litellm 1.107.0 was a compromised release (withdrawn from PyPI); 1.108.1 and later pin a `litellm-proxy` package
# for the [proxy] extra that PyPI does not have. 1.108.0 is the newest release whose [proxy] extra installs.
LITELLM_REQUIREMENT = "litellm[proxy]==1.108.0"
LITELLM_KEY = "sk-bench-litellm-master"
# @hono/node-server after 1.14.1 hands Portkey the upstream's immutable fetch headers, and every streamed answer then
# fails with "TypeError: immutable" (Portkey-AI/gateway issues #1389 and #1550): pin the last version that works.
PORTKEY_PACKAGE = {"private": True, "dependencies": {"@portkey-ai/gateway": "1.15.2"},
                   "overrides": {"@hono/node-server": "1.14.1"}}
PORTKEY_SERVER = "node_modules/@portkey-ai/gateway/build/start-server.js"
INSTALL_TIMEOUT = 900


class PeerUnavailable(Exception):
    """A peer could not be installed or started; the message says why."""


@dataclass
class Peer:
    """A started gateway: the process tree to measure, its port, and how a request reaches each upstream."""

    name: str
    pid: int
    port: int
    key: str
    headers: dict[str, dict[str, str]]  # per model: extra request headers
    version: str


def _run(command: list[str], *, cwd: Path, log: Path) -> None:
    with open(log, "ab") as out:
        out.write(f"$ {' '.join(command)}\n".encode())
        out.flush()
        try:
            done = subprocess.run(command, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, timeout=INSTALL_TIMEOUT)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PeerUnavailable(f"{command[0]} failed: {exc}") from None
    if done.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise PeerUnavailable(f"`{' '.join(command)}` exited with {done.returncode} (log: {log}):\n{tail}")


def _installed(folder: Path, wanted: str) -> bool:
    marker = folder / ".bench-installed"
    return marker.exists() and marker.read_text() == wanted


def litellm_install() -> Path:
    """LiteLLM's proxy in its own virtualenv under bench/.peers/litellm; returns its `litellm` command."""
    folder = PEERS_DIR / "litellm"
    command = folder / "bin" / "litellm"
    if _installed(folder, LITELLM_REQUIREMENT) and command.exists():
        return command
    shutil.rmtree(folder, ignore_errors=True)
    PEERS_DIR.mkdir(parents=True, exist_ok=True)
    log = PEERS_DIR / "litellm-install.log"
    log.write_bytes(b"")
    print(f"installing {LITELLM_REQUIREMENT} into {folder} (pip)", file=sys.stderr, flush=True)
    _run([sys.executable, "-m", "venv", str(folder)], cwd=PEERS_DIR, log=log)
    _run([str(folder / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", LITELLM_REQUIREMENT],
         cwd=PEERS_DIR, log=log)
    (folder / ".bench-installed").write_text(LITELLM_REQUIREMENT)
    return command


def portkey_install() -> Path:
    """Portkey's gateway with `npm install --prefix bench/.peers/portkey`; returns its server script."""
    folder = PEERS_DIR / "portkey"
    wanted = json.dumps(PORTKEY_PACKAGE, sort_keys=True)
    if _installed(folder, wanted) and (folder / PORTKEY_SERVER).exists():
        return folder / PORTKEY_SERVER
    if shutil.which("npm") is None or shutil.which("node") is None:
        raise PeerUnavailable("Node.js and npm are not installed (apt-get install nodejs npm)")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    (folder / "package.json").write_text(json.dumps(PORTKEY_PACKAGE, indent=2) + "\n")
    log = PEERS_DIR / "portkey-install.log"
    log.write_bytes(b"")
    print(f"installing @portkey-ai/gateway {PORTKEY_PACKAGE['dependencies']['@portkey-ai/gateway']} into {folder} "
          "(npm)", file=sys.stderr, flush=True)
    _run(["npm", "install", "--prefix", str(folder), "--no-audit", "--no-fund"], cwd=folder, log=log)
    (folder / ".bench-installed").write_text(wanted)
    return folder / PORTKEY_SERVER


def _peer_env() -> dict[str, str]:
    """The bench's environment less what would make a peer use the bench's database or Redis."""
    env = {name: value for name, value in os.environ.items()
           if name not in ("DATABASE_URL", "REDIS_URL", "PYTHONPATH", "DJANGO_SETTINGS_MODULE")}
    return env


def litellm_start(procs: Processes, upstreams: dict[str, str]) -> Peer:
    """LiteLLM's proxy with one OpenAI-compatible model per upstream (model name -> base URL ending in /v1)."""
    command = litellm_install()
    config = procs.workdir / "litellm.yaml"
    models = "".join(f"  - model_name: {model}\n    litellm_params:\n      model: openai/{model}\n"
                     f"      api_base: {base}\n      api_key: bench-upstream-key\n"
                     for model, base in upstreams.items())
    config.write_text(f"model_list:\n{models}general_settings:\n  master_key: {LITELLM_KEY}\n"
                      "litellm_settings:\n  telemetry: false\n")
    # uvicorn's access log off, as Daphne's is by default: one log line per request is not what is measured here
    log_config = procs.workdir / "litellm-logging.json"
    log_config.write_text(json.dumps({
        "version": 1, "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(asctime)s %(name)s %(levelname)s %(message)s"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
        "loggers": {"uvicorn": {"handlers": ["stderr"], "level": "WARNING"},
                    "uvicorn.access": {"handlers": ["stderr"], "level": "WARNING", "propagate": False}}}))
    env = _peer_env() | {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"}

    def argv(port: int) -> list[str]:
        return [str(command), "--config", str(config), "--host", "127.0.0.1", "--port", str(port),
                "--num_workers", "1", "--log_config", str(log_config)]

    try:
        proc, port = start_server(procs, "litellm", argv, env, "/health/liveliness", timeout=120, cwd=procs.workdir)
    except RuntimeError as exc:
        raise PeerUnavailable(str(exc)) from None
    return Peer("litellm", proc.pid, port, LITELLM_KEY, {model: {} for model in upstreams},
                LITELLM_REQUIREMENT.split("==")[1])


def portkey_start(procs: Processes, upstreams: dict[str, str]) -> Peer:
    """Portkey's gateway (headless, no UI), routed per request by the `x-portkey-provider: openai` and
    `x-portkey-custom-host` headers (its README's "provider + custom host" mode; no config file)."""
    script = portkey_install()
    node = shutil.which("node")
    if node is None:
        raise PeerUnavailable("Node.js is not installed")
    env = _peer_env() | {"NODE_ENV": "production"}
    try:
        proc, port = start_server(procs, "portkey", lambda port: [node, str(script), f"--port={port}", "--headless"],
                                  env, "/", timeout=60, cwd=script.parent)
    except RuntimeError as exc:
        raise PeerUnavailable(str(exc)) from None
    headers = {model: {"x-portkey-provider": "openai", "x-portkey-custom-host": base}
               for model, base in upstreams.items()}
    return Peer("portkey", proc.pid, port, "bench-upstream-key", headers,
                PORTKEY_PACKAGE["dependencies"]["@portkey-ai/gateway"])


PEERS = {"litellm": litellm_start, "portkey": portkey_start}


def main(argv: list[str]) -> int:
    if argv != ["install"]:
        print(__doc__, file=sys.stderr)
        return 2
    status = 0
    for name, install in (("litellm", litellm_install), ("portkey", portkey_install)):
        try:
            print(f"{name}: {install()}")
        except PeerUnavailable as exc:
            print(f"{name}: NOT INSTALLED: {exc}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
