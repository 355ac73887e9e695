"""The server's prompt files: the ``.prompt.yml`` files directly inside one directory,
listed, shown, run and evaluated for the playground and any other caller (FastAPI-free).

An id is a file's stem (``capsule-summary`` for ``capsule-summary.prompt.yml``); anything
that is not the stem of a file directly inside the directory (``..``, slashes, a symlink
leading out) is :class:`PromptNotFound`, so a caller can never read another file.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

from ..errors import LLMError, MissingVariablesError, PromptFileError
from ..prompts import _PLACEHOLDER, PromptFile, load_prompt

__all__ = ["PromptLibrary", "PromptNotFound"]

_SUFFIXES = (".prompt.yml", ".prompt.yaml")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


class PromptNotFound(LLMError):
    """No prompt file of that id in the server's prompts directory (404)."""

    def __init__(self, ident: str) -> None:
        shown = ident if len(ident) <= 80 else ident[:80] + "…"
        super().__init__(
            f"No prompt file {shown!r} here: GET /prompts lists the ids (a file's name "
            "without .prompt.yml)."
        )


class PromptLibrary:
    """The prompt files of ``directory``, each parsed once per modification."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self._parsed: dict[Path, tuple[float, PromptFile | PromptFileError]] = {}
        self._lock = threading.Lock()

    def ids(self) -> list[str]:
        """The ids of the files, sorted; none when the directory does not exist."""
        if not self.directory.is_dir():
            return []
        found = {
            entry.name[: -len(suffix)]
            for entry in self.directory.iterdir()
            for suffix in _SUFFIXES
            if entry.name.endswith(suffix) and entry.is_file()
        }
        return sorted(i for i in found if _ID.fullmatch(i))

    def path_of(self, ident: str) -> Path:
        if not _ID.fullmatch(ident) or ".." in ident:
            raise PromptNotFound(ident)
        root = self.directory.resolve()
        for suffix in _SUFFIXES:
            path = self.directory / f"{ident}{suffix}"
            if path.is_file() and path.resolve().parent == root:
                return path
        raise PromptNotFound(ident)

    def load(self, ident: str) -> PromptFile:
        """The parsed file (:class:`~sigla.errors.PromptFileError` if it is invalid)."""
        path = self.path_of(ident)
        mtime = path.stat().st_mtime
        with self._lock:
            cached = self._parsed.get(path)
        if cached is None or cached[0] != mtime:
            try:
                parsed: PromptFile | PromptFileError = load_prompt(path)
            except PromptFileError as error:
                parsed = _named(error, path)
            with self._lock:
                self._parsed[path] = (mtime, parsed)
        else:
            parsed = cached[1]
        if isinstance(parsed, PromptFileError):
            raise parsed
        return parsed

    def render_error(self, error: PromptFileError, ident: str) -> PromptFileError:
        """``error`` (of rendering ``ident``) naming the file, not where it is on disk."""
        return _named(error, self.path_of(ident))

    def summaries(self) -> list[dict[str, Any]]:
        """Id, name, description and model of each file; an invalid one with its error."""
        out = []
        for ident in self.ids():
            try:
                prompt = self.load(ident)
            except PromptFileError as error:
                out.append(
                    {
                        "id": ident,
                        "name": ident,
                        "description": "",
                        "model": None,
                        "error": str(error),
                    }
                )
            except PromptNotFound:  # removed meanwhile
                continue
            else:
                out.append(
                    {
                        "id": ident,
                        "name": prompt.name or ident,
                        "description": prompt.description,
                        "model": prompt.model,
                        "error": None,
                    }
                )
        return out

    def detail(self, ident: str) -> dict[str, Any]:
        """Everything the playground shows of one file before running it."""
        prompt = self.load(ident)
        variables: list[str] = []
        for message in prompt.messages:
            for name in _PLACEHOLDER.findall(message.content):
                if name not in variables:
                    variables.append(name)
        params = prompt.model_parameters
        return {
            "id": ident,
            "name": prompt.name or ident,
            "description": prompt.description,
            "model": prompt.model,
            "modelParameters": {
                k: v
                for k, v in (
                    ("temperature", params.temperature),
                    ("maxTokens", params.max_tokens),
                    ("topP", params.top_p),
                )
                if v is not None
            },
            "responseFormat": prompt.response_format,
            "messages": [{"role": m.role, "content": m.content} for m in prompt.messages],
            "variables": variables,
            "testData": len(prompt.test_data),
            "evaluators": [e.name for e in prompt.evaluators],
        }


def _named(error: PromptFileError, path: Path) -> PromptFileError:
    """The error with the file's name for its path: callers see which file, never where
    the server keeps it."""
    where: dict[str, Any] = {
        "path": path.name,
        "line": error.line,
        "column": error.column,
        "field": error.field,
    }
    if isinstance(error, MissingVariablesError):
        return MissingVariablesError(error.problem, missing=error.missing, **where)
    return PromptFileError(error.problem, **where)
