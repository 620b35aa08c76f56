"""Which ml-cicd this is: the version (from the git tag) and the commit it was built from.

setuptools-scm writes both into ``mlcicd/_version.py`` when the package is built (see
pyproject.toml); the commit is what ``mlci-gen render`` pins the actions to by default, so a
scaffold names exactly the release that wrote it (a source archive of a tag, where git
describes the commit by the tag's name alone, records it in ``mlcicd/COMMIT``). A tree that
was never built (a checkout's ``src/`` on ``sys.path``) has no version file: then the version
comes from the installed metadata, and the commit is unknown.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from functools import cache
from importlib import metadata, resources

DIST = "ml-cicd"
_COMMIT = re.compile(r"g?([0-9a-f]{40})")
# A final release: N.N.N and nothing else (no .devN, no +local segment, no pre-release).
_RELEASE = re.compile(r"\d+\.\d+\.\d+")


@dataclass(frozen=True)
class BuildInfo:
    version: str
    commit: str | None  # 40 hex digits; None when the build had no git metadata
    dirty: bool = False  # built from a checkout with uncommitted changes: the commit is not the whole story

    @property
    def release(self) -> bool:
        """A tagged release (1.2.3), not a development build between tags."""
        return _RELEASE.fullmatch(self.version) is not None

    @property
    def public_version(self) -> str:
        """The version without its local segment (``+g<sha>.d<date>``): what a tag or index names."""
        return self.version.split("+", 1)[0]

    def describe(self) -> str:
        """One line for ``--version`` and logs."""
        if self.commit is None:
            return self.version
        return f"{self.version} (commit {self.commit}{', with uncommitted changes' if self.dirty else ''})"


def parse(version: str, node: object, dirty: object = False) -> BuildInfo:
    """BuildInfo from the version file's values; setuptools-scm writes the node as ``g<sha>``."""
    match = _COMMIT.fullmatch(node) if isinstance(node, str) else None
    return BuildInfo(version, match.group(1) if match else None, dirty is True)


@cache
def build_info() -> BuildInfo:
    try:
        _version = importlib.import_module("mlcicd._version")
    except ImportError:
        try:
            return BuildInfo(metadata.version(DIST), None)
        except metadata.PackageNotFoundError:
            return BuildInfo("0+unknown", None)
    info = parse(str(_version.version), getattr(_version, "commit", None), getattr(_version, "dirty", False))
    if info.commit is None:  # built from a source archive of a tag: git archive wrote the commit into COMMIT
        info = parse(info.version, _archived_commit(), info.dirty)
    return info


def _archived_commit() -> str | None:
    try:
        text = resources.files("mlcicd").joinpath("COMMIT").read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return text if _COMMIT.fullmatch(text) else None  # unexpanded ($Format:%H$) outside an archive


__version__ = build_info().version


def rebuild_env(info: BuildInfo) -> dict[str, str]:
    """Environment that makes setuptools-scm build ml-cicd's source as ``info`` says it was built.

    For rebuilding this installation's source where git cannot answer (a copy without .git):
    the wheel then carries the same version and commit as the installed package.
    """
    env = {"SETUPTOOLS_SCM_PRETEND_VERSION_FOR_ML_CICD": info.version}
    if info.commit:
        dirty = str(info.dirty).lower()  # TOML
        env["SETUPTOOLS_SCM_PRETEND_METADATA_FOR_ML_CICD"] = f'{{node="g{info.commit}", dirty={dirty}}}'
    return env
