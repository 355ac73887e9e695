"""The playground: the page at ``GET /`` and the prompt-file routes it (or anyone) calls.

The page and its assets (``sigla/_data/playground/``) are static and open; the JSON routes
(``/prompts``...) sit on the API router, behind the server's access control.
"""

from __future__ import annotations

import os
from importlib import resources
from typing import Any

import anyio
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from ..errors import PromptFileError
from ._config import ModelNotServed
from ._prompts import PromptLibrary
from ._streams import unless_caller_leaves
from ._wire import PromptEval, PromptRun, usage_json

__all__ = ["add_playground"]

_PAGE = ("_data", "playground")


def _page_files() -> Any:
    return resources.files("sigla").joinpath("/".join(_PAGE))


def add_playground(app: FastAPI, api: APIRouter, server: Any) -> None:
    """Mount the page (when the package ships it) and add the prompt routes to ``api``.
    ``server`` is the app's shared state (clients, size check, prompts directory)."""
    library = PromptLibrary(server.config.prompts_dir)
    server.prompts = library
    pool = server.pool

    def served_or_default(asked: str | None, files_model: str | None) -> str:
        """The model a prompt run uses: the one asked for (it must be served), else the
        file's when this server serves it, else the server's default."""
        if asked:
            return str(pool.choose(asked))
        try:
            return str(pool.choose(files_model))
        except ModelNotServed:
            return str(pool.served[0])

    @api.get("/prompts", tags=["prompts"])
    async def prompts() -> dict[str, Any]:
        """The prompt files of the server's prompts directory: id (the file's name without
        ``.prompt.yml``), name, description, model; an invalid file with its error."""
        return {"prompts": await anyio.to_thread.run_sync(library.summaries)}

    @api.get("/prompts/{prompt_id}", tags=["prompts"])
    async def prompt(prompt_id: str) -> dict[str, Any]:
        """One prompt file: its messages, the ``{{variables}}`` they use, its parameters,
        and how many test cases and evaluators it has."""
        return await anyio.to_thread.run_sync(library.detail, prompt_id)

    @api.post("/prompts/{prompt_id}/run", tags=["prompts"])
    async def run(request: Request, prompt_id: str, body: PromptRun) -> dict[str, Any]:
        """Render the file with ``variables`` and send it: the answer, and the messages
        exactly as they were sent."""
        file = await anyio.to_thread.run_sync(library.load, prompt_id)
        model = served_or_default(body.model, file.model)
        client = await server.client(request, model, None)
        try:
            call = file.request(
                body.variables,
                llm=client,
                model=model,
                temperature=body.temperature,
                max_tokens=body.max_tokens,
            )
        except PromptFileError as error:
            raise library.render_error(error, prompt_id) from None
        server.check_size(sum(len(m["content"]) for m in call["messages"]))
        try:
            completion = await unless_caller_leaves(
                request.receive, lambda: client.acomplete(**call)
            )
        finally:
            server.metrics.publish(model, client.usage)
        return {
            "answer": completion.text,
            "messages": call["messages"],
            "model": completion.model or model,
            "usage": usage_json(completion.usage),
            "finish_reason": completion.finish_reason or "stop",
        }

    @api.post("/prompts/{prompt_id}/eval", tags=["prompts"])
    async def evaluate(request: Request, prompt_id: str, body: PromptEval) -> dict[str, Any]:
        """Run the file's test data through its evaluators, as ``sigla prompt eval --json``
        (gh-models' report shape). Judges run on a served model: ``SIGLA_JUDGE_MODEL`` if
        served, else the model the cases ran on."""
        file = await anyio.to_thread.run_sync(library.load, prompt_id)
        model = served_or_default(body.model, file.model)
        client = await server.client(request, model, None)
        judge = os.environ.get("SIGLA_JUDGE_MODEL", "").strip()
        judge = served_or_default(None, judge) if judge else model
        try:
            report = await unless_caller_leaves(
                request.receive, lambda: file.aevaluate(client, judge_model=judge)
            )
        finally:
            server.metrics.publish(model, client.usage)
        result: dict[str, Any] = report.as_dict()
        return result

    page = _page_files()
    if not page.joinpath("index.html").is_file():
        return  # a source tree without the page: the API works without it
    index = page.joinpath("index.html").read_text(encoding="utf-8")

    @app.get("/", include_in_schema=False, response_class=HTMLResponse)
    async def playground() -> HTMLResponse:
        return HTMLResponse(index, headers=_PAGE_HEADERS)

    app.mount("/static", _Assets(packages=[("sigla", "/".join(_PAGE))]), name="static")


# The page loads only its own files; nobody may frame it (the key form); everything is
# revalidated, so a sigla upgrade never pairs a new page with an old cached script.
_PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class _Assets(StaticFiles):
    """The page's files, with the page's headers."""

    async def get_response(self, path: str, scope: Any) -> Any:
        response = await super().get_response(path, scope)
        response.headers.update(_PAGE_HEADERS)
        return response
