"""A faithful loopback double of the GitHub Models inference service, for tests.

:class:`FakeGitHubModels` runs a small HTTP server on 127.0.0.1 that answers the way
``https://models.github.ai`` did, and the way its successors do (the Azure AI Foundry
``/models`` route and the Mistral / OpenAI-compatible ``/v1`` route): the same routes,
bodies, headers, SSE framing, error envelopes, rate-limit answers and retirement answers.
It is built from the wire contract alone and imports nothing else from sigla, so it cannot
share the client's bugs. It only uses the standard library.

Example::

    from sigla.testing import FakeGitHubModels

    def test_retries_after_a_rate_limit():
        with FakeGitHubModels() as fake:
            fake.fail("rate_limit_minute", retry_after=1)
            fake.reply("Hello there!")
            answer = my_app.ask("hi", endpoint=fake.url, token="any-token")
            assert answer == "Hello there!"
            assert [r.status for r in fake.requests] == [429, 200]
            assert fake.last_request.headers["authorization"] == "Bearer ***"

Each inference request is checked in this order; the first check that answers wins:

1. retirement (:meth:`FakeGitHubModels.retire`; GitHub routes only, the successors keep working),
2. the next scripted fault (:meth:`FakeGitHubModels.fail`; names in :data:`FAULTS`),
3. ``?api-version=`` on the Azure route, then the bearer token (``401 Bad credentials``),
4. the JSON body and, on GitHub routes, the ``{publisher}/{name}`` model id and the catalog,
5. the enforced limits: ``concurrency``, ``rpm``, ``daily``, ``tpm`` (429 with the real headers),
6. the input size against ``max_input_tokens`` (``413 tokens_limit_reached``),
7. the next scripted reply (:meth:`FakeGitHubModels.reply`), else the default reply of
   ``reply_mode``: ``"Echo: <last user message>"``, or with ``"extractive"`` the first
   sentence of each of its paragraphs.

Routes (all accept a query string):

=====  ==================================================  =========================
POST   ``/inference[/v1]/chat/completions``                GitHub (``route="github"``)
POST   ``/orgs/{org}/inference[/v1]/chat/completions``     GitHub, billed to ``org``
POST   ``/[orgs/{org}/]inference[/v1]/embeddings``         GitHub embeddings
GET    ``/catalog/models``                                 GitHub catalog (no auth needed)
POST   ``/models/chat/completions?api-version=...``        Azure AI Foundry (``"azure"``)
POST   ``/models/embeddings?api-version=...``              Azure AI Foundry embeddings
POST   ``/v1/chat/completions``, ``/v1/embeddings``        Mistral / OpenAI-compatible (``"v1"``)
GET    ``/v1/models``                                      Mistral / OpenAI-compatible model list
=====  ==================================================  =========================

To try sigla with no account, run the double on its own: ``python -m sigla.testing``.

The double never keeps a credential: :class:`RecordedRequest` stores ``authorization`` as
``"Bearer ***"`` and only a SHA-256 of the token, which :meth:`FakeGitHubModels.saw_token`
compares against.
"""

from __future__ import annotations

from ._contract import FAULTS
from ._contract import ReplyMode as ReplyMode  # Literal types used in public signatures
from ._contract import Retirement as Retirement
from ._contract import Route as Route
from ._contract import StreamStyle as StreamStyle
from ._fake import FakeGitHubModels, RecordedRequest

__all__ = ["FAULTS", "FakeGitHubModels", "RecordedRequest"]
