"""Packaging for sigla. Extras: llm (the model client), server, tokens (exact token counts for
Mistral models, used by sigla.capsules), prompts (jsonschema, to check JSON answers of
prompt files), redis (a response cache shared through Redis), dask
(running chat_batch/summarize_batch on a dask.distributed cluster), dev (tests and lint)."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent

LLM = ["mistralai>=1.12,<4", "httpx>=0.27,<1", "httpcore>=1,<2", "tqdm>=4.66"]
# fastapi 0.135: native SSE (fastapi.sse); prometheus-client: GET /metrics
SERVER = ["fastapi>=0.135", "uvicorn>=0.29", "prometheus-client>=0.20"]
# mistral-common ships its tokenizer files: counting needs no download (about 37 MB installed,
# with numpy, pydantic and tiktoken; loading the tokenizer takes 2-3 s, once per process).
TOKENS = ["mistral-common>=1.5"]
# jsonschema: PromptFile.run(parse=True) checks a json_schema answer against its schema.
PROMPTS = ["jsonschema>=4"]
REDIS = ["redis>=5"]  # redis-py: cache="redis://host:6379/1" (tests also need redis-server)
# Only the tests need it: chat_batch and summarize_batch import no engine library.
DASK = ["dask[distributed]>=2024.8"]
DEV = [
    *LLM,
    *SERVER,
    *REDIS,
    *DASK,
    *PROMPTS,
    "pandas>=2",  # the DataFrame batches of the engine tests
    "openai>=1.40",  # the server's /v1 is tested with the official client
    "schemathesis>=4",  # fuzzes the server's OpenAPI schema
    # drives a headless Chromium through the playground page (Debian's chromium, or
    # Playwright's own where `python -m playwright install chromium` can download it)
    "playwright>=1.40",
    "pytest>=8",
    "pytest-asyncio>=0.23",
    "pytest-timeout>=2.3",
    "hypothesis>=6.100",
    "ruff>=0.6",
    "mypy>=1.10",
]

setup(
    name="sigla",
    version="0.1.0",
    description="The SIGLA client for large language models: GitHub Models and its successors.",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["sigla", "sigla.*"]),
    package_data={
        "sigla": [
            "py.typed",
            "_data/*.json",
            "_data/prompts/*.prompt.yml",
            "_data/judges/*.prompt.yml",
            "_data/playground/*",
        ]
    },
    # platformdirs: cache=True's folder; PyYAML: prompt files (read as YAML 1.2, see
    # sigla/_prompt_yaml.py), which summarize_capsules uses too
    install_requires=["click>=8.1", "platformdirs>=3", "PyYAML>=6"],
    extras_require={
        "llm": LLM,
        "server": LLM + SERVER,
        "tokens": TOKENS,
        "prompts": PROMPTS,
        "redis": REDIS,
        "dask": DASK,
        "dev": DEV,
    },
    entry_points={"console_scripts": ["sigla=sigla.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
        "Typing :: Typed",
    ],
)
