"""Package-level promises: public names, cheap imports, missing extras, sync/async parity."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys

import pytest

import sigla.errors
import sigla.llm
from sigla.llm import GitHubLLM

PUBLIC_MODULES = ["sigla.llm", "sigla.errors", "sigla.testing", "sigla.cli", "sigla.capsules"]


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_public_names_are_importable_and_documented(module_name):
    module = importlib.import_module(module_name)
    assert module.__doc__
    for name in module.__all__:
        obj = getattr(module, name)
        assert inspect.getdoc(obj), f"{module_name}.{name} has no docstring"
        if inspect.isclass(obj) and not issubclass(obj, BaseException):
            for member, value in vars(obj).items():
                if member.startswith("_") or not callable(getattr(value, "fget", value)):
                    continue
                doc = inspect.getdoc(getattr(value, "fget", value))
                assert doc, f"{module_name}.{name}.{member} has no docstring"


def test_errors_are_one_tree_rooted_in_runtime_error():
    for name in sigla.errors.__all__:
        cls = getattr(sigla.errors, name)
        assert issubclass(cls, sigla.errors.LLMError)
        assert issubclass(cls, RuntimeError)
        assert getattr(sigla.llm, name) is cls
        assert name in sigla.errors.__doc__, f"{name} missing from the tree drawing"


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_importing_sigla_llm_does_not_import_mistralai_or_httpx():
    out = _run(
        "import sys, sigla.llm; "
        "print(sorted(m for m in ('mistralai', 'httpx', 'httpx2', 'click', 'yaml') "
        "if m in sys.modules))"
    )
    assert out == "[]"


def test_missing_mistralai_names_the_extra_to_install():
    out = _run(
        "import sys; sys.modules['mistralai'] = None\n"
        "from sigla.llm import GitHubLLM, MissingDependencyError\n"
        "llm = GitHubLLM(token='test-token-long', endpoint='http://127.0.0.1:9/inference')\n"
        "try:\n    llm.chat('hi')\n"
        "except MissingDependencyError as e:\n    print(isinstance(e, ImportError), e)\n"
    )
    assert out.startswith("True ")
    assert 'pip install "mistralai>=1.12,<4"' in out  # the pip names, never "sigla[llm]"
    assert '"sigla[llm]"' not in out
    assert 'pip install -e ".[llm]"' in out


@pytest.mark.parametrize(
    ("sync_name", "async_name"),
    [("complete", "acomplete"), ("chat", "achat"), ("stream", "astream")],
)
def test_async_twins_take_the_same_parameters(sync_name, async_name):
    sync_sig = inspect.signature(getattr(GitHubLLM, sync_name))
    async_sig = inspect.signature(getattr(GitHubLLM, async_name))
    assert list(sync_sig.parameters) == list(async_sig.parameters)
    for name, param in sync_sig.parameters.items():
        assert async_sig.parameters[name].default == param.default
        assert async_sig.parameters[name].kind == param.kind


def test_package_ships_py_typed():
    from pathlib import Path

    assert (Path(sigla.llm.__file__).parent / "py.typed").exists()


def test_wire_rewrite_is_pure_and_keeps_mistral_names_for_mistral():
    import json

    from sigla._core import Wire, rewrite_body

    body = json.dumps(
        {
            "random_seed": 1,
            "stream": True,
            "messages": [{"role": "assistant", "content": "x", "prefix": False}],
        }
    ).encode()
    openai_style = json.loads(rewrite_body(body, Wire()))
    assert openai_style["seed"] == 1 and "random_seed" not in openai_style
    assert openai_style["stream_options"] == {"include_usage": True}
    assert "prefix" not in openai_style["messages"][0]
    mistral_style = json.loads(
        rewrite_body(body, Wire(seed_field="random_seed", stream_usage=False))
    )
    assert mistral_style["random_seed"] == 1 and "stream_options" not in mistral_style


def test_every_module_imports_first_in_a_fresh_interpreter():
    """A worker (Dask, spawn) may import any module first when it unpickles a function:
    a circular import that works from `import sigla.capsules` must also work the other
    way round."""
    import pathlib

    root = pathlib.Path(sigla.llm.__file__).parent
    names = sorted(
        "sigla." + ".".join(path.relative_to(root).with_suffix("").parts)
        for path in root.rglob("*.py")
        if path.name != "__main__.py"
    )
    names = [name.removesuffix(".__init__") for name in names]
    children = {
        name: subprocess.Popen(
            [sys.executable, "-c", f"import {name}"], stderr=subprocess.PIPE, text=True
        )
        for name in names
    }
    failed = {
        name: child.communicate(timeout=120)[1].strip().splitlines()[-1:]
        for name, child in children.items()
        if child.wait(120) != 0
    }
    assert not failed, failed
