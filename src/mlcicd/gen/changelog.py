"""The release notes of one version: its section of CHANGELOG.md (Keep a Changelog).

The release pipelines publish this text as the GitHub release and the GitLab catalog release,
so a release says what the CHANGELOG says and nothing is written twice.
"""

from __future__ import annotations

import re

from mlcicd.errors import UsageError

_HEADING = re.compile(r"^## \[(?P<name>[^\]]+)\]", re.MULTILINE)


def section(text: str, version: str, *, where: str = "CHANGELOG.md") -> str:
    """The body under ``## [<version>]`` (a leading ``v`` of a tag is ignored), up to the next section."""
    wanted = version.removeprefix("v")
    headings = list(_HEADING.finditer(text))
    for n, heading in enumerate(headings):
        if heading.group("name").removeprefix("v") != wanted:
            continue
        start = text.index("\n", heading.end()) + 1 if "\n" in text[heading.end():] else len(text)
        end = headings[n + 1].start() if n + 1 < len(headings) else len(text)
        # Link references ([1.2.3]: https://...) at the end belong to no section.
        body = re.sub(r"(?m)^\[[^\]]+\]: \S+\s*$", "", text[start:end]).strip()
        if not body:
            break
        return body + "\n"
    raise UsageError(f"no section `## [{wanted}]` with entries", where=where,
                     fix=f"move the entries under `## [Unreleased]` to a new `## [{wanted}] - <date>` "
                         "section before tagging the release")
