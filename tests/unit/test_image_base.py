"""The Debian Python base image: what its cache key covers, the cache itself, and missing tools."""

from __future__ import annotations

import pytest

from mlcicd.errors import ToolMissingError, UsageError
from mlcicd.images.base import BaseSpec, cache_dir, ensure_archive


def test_key_covers_everything_that_goes_into_the_image():
    spec = BaseSpec(arch="amd64")
    assert spec.key() == BaseSpec(arch="amd64").key()
    others = [BaseSpec(suite="trixie", arch="amd64"), BaseSpec(arch="arm64"), BaseSpec(arch="amd64", mirror="http://m"),
              BaseSpec(arch="amd64", packages=("python3", "python3-venv")), BaseSpec(arch="amd64", recipe=99)]
    assert len({spec.key(), *(o.key() for o in others)}) == 1 + len(others)


def test_python_platform_and_tag_follow_the_release():
    assert (BaseSpec(arch="amd64").python, BaseSpec(arch="amd64").platform) == ("3.11", "manylinux_2_36_x86_64")
    trixie = BaseSpec(suite="trixie", arch="arm64")
    assert (trixie.python, trixie.platform, trixie.tag) == ("3.13", "manylinux_2_41_aarch64", "3.13-trixie")
    with pytest.raises(UsageError, match="bookworm, trixie"):
        BaseSpec(suite="buster").resolved()


def test_cache_location():
    assert cache_dir({"MLCI_CACHE_DIR": "/c"}).as_posix() == "/c"
    assert cache_dir({"XDG_CACHE_HOME": "/x", "HOME": "/h"}).as_posix() == "/x/mlcicd"
    assert cache_dir({"HOME": "/h"}).as_posix() == "/h/.cache/mlcicd"


def test_a_cached_archive_is_reused_without_any_tool(tmp_path):
    spec = BaseSpec(arch="amd64")
    cached = tmp_path / "base" / f"debian-bookworm-amd64-{spec.key()}.oci.tar"
    cached.parent.mkdir()
    cached.write_bytes(b"an archive")
    lines: list[str] = []
    assert ensure_archive(spec, tmp_path, {"PATH": str(tmp_path / "nothing")}, lines.append) == cached
    assert lines == [f"base image cached: {cached}"]


def test_missing_tools_say_what_to_install(tmp_path):
    with pytest.raises(ToolMissingError) as err:
        ensure_archive(BaseSpec(arch="amd64"), tmp_path, {"PATH": str(tmp_path)}, lambda line: None)
    assert "apt-get install -y debootstrap buildah tar" in str(err.value)
