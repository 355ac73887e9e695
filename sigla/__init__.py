"""sigla: the SIGLA project's client for large language models.

``from sigla.llm import GitHubLLM`` is the entry point; see README.md. Importing the
package is cheap: nothing heavy is loaded until a model is called.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
