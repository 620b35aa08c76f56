"""Pull-request / merge-request comments: one per pipeline, kept up to date in place.

* :mod:`~mlcicd.comments.body` — the comment as data (render, parse, merge), built from report dirs;
* :mod:`~mlcicd.comments.sync` — create once, update in place, converge when jobs race;
* :mod:`~mlcicd.comments.github`, :mod:`~mlcicd.comments.gitlab` — the two APIs;
* :mod:`~mlcicd.comments.rest` — the JSON call both APIs make;
* :mod:`~mlcicd.comments.context` — which pull request, which token, from the CI's environment;
* :mod:`~mlcicd.comments.command` — ``mlci comment``.
"""

from __future__ import annotations

from mlcicd.errors import MlciError


class CommentApiError(MlciError):
    """The API could not be reached or kept failing (exit 4); re-running the step is safe."""
