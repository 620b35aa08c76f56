"""A third-party plugin, installed for real: a package on sys.path with a dist-info that
registers entry points, exactly what ``pip install`` of a plugin leaves behind."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest


def install_plugin(root: Path, monkeypatch: pytest.MonkeyPatch, *, module: str, source: str,
                   entry_points: dict[str, dict[str, str]]) -> None:
    """Write ``module`` (its code: ``source``) and a distribution registering ``entry_points``
    (group -> name -> "module:attribute") under ``root``, and put ``root`` on sys.path."""
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    dist = root / f"{module.replace('_', '-')}-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module.replace('_', '-')}\nVersion: 0.1\n")
    lines = []
    for group, names in entry_points.items():
        lines.append(f"[{group}]")
        lines += [f"{name} = {spec}" for name, spec in names.items()]
    (dist / "entry_points.txt").write_text("\n".join(lines) + "\n")
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.delitem(sys.modules, module, raising=False)
