"""Shared fixtures: loopback servers (scripted and real), recipes written to disk."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fake_server import FakeOpenAIServer, FaultPlan

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def fake_server():
    """Start a scripted OpenAI-compatible server on loopback: fake_server(latency=..., faults=...)."""
    servers = []

    def start(**kwargs) -> FakeOpenAIServer:
        if "faults" in kwargs and isinstance(kwargs["faults"], dict):
            kwargs["faults"] = FaultPlan(**kwargs["faults"])
        server = FakeOpenAIServer(**kwargs).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def write_recipe(tmp_path):
    def write(text: str, name: str = "recipe.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout} s")


@pytest.fixture(scope="session")
def llama_server():
    """A real llama_cpp.server serving the bundled SmolLM2 on loopback; yields its base URL."""
    pytest.importorskip("llama_cpp.server")
    from synthloom.llm import bundled_model_path

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(bundled_model_path()),
         "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--logits_all", "true"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, proc)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def synthloom_cmd(*args: str) -> list[str]:
    """The installed console script, as a user runs it."""
    script = Path(sys.executable).parent / "synthloom"
    return [str(script), *args] if script.exists() else [sys.executable, "-m", "synthloom", *args]


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 600):
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        synthloom_cmd(*args), cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )
