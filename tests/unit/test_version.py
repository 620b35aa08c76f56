"""One version, from the git tag: the build records it with its commit, and everything reports it."""

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

from click.testing import CliRunner

from mlcicd import __version__
from mlcicd.cli import mlci, mlci_gen
from mlcicd.images import oci_labels
from mlcicd.report import StageResult, Verdict, write_report
from mlcicd.version import BuildInfo, build_info, parse, rebuild_env

SHA = "0123456789abcdef0123456789abcdef01234567"


def test_the_version_file_names_the_version_and_the_full_commit():
    assert parse("1.2.3", "g" + SHA) == BuildInfo("1.2.3", SHA)
    assert parse("1.2.3", SHA).commit == SHA
    assert parse("1.2.3", None).commit is None
    assert parse("1.2.3", "g0123456").commit is None  # a short node is no pin
    assert parse("1.2.4.dev3+g0123456", "g" + SHA, True).dirty


def test_releases_and_development_builds():
    assert BuildInfo("1.2.3", SHA).release
    assert not BuildInfo("1.2.4.dev3+g0123456.d20260101", SHA).release
    assert BuildInfo("1.2.4.dev3+g0123456.d20260101", SHA).public_version == "1.2.4.dev3"
    assert BuildInfo("1.2.3", SHA).describe() == f"1.2.3 (commit {SHA})"
    assert BuildInfo("1.2.3", None).describe() == "1.2.3"


def test_this_installation_knows_its_version_and_commit():
    info = build_info()
    assert __version__ == info.version
    assert re.fullmatch(r"\d+(\.\d+)*\S*", info.version)
    # This checkout is a git repository, so its (editable) build recorded the commit.
    assert info.commit is not None and re.fullmatch(r"[0-9a-f]{40}", info.commit)


def test_both_commands_print_the_version():
    for command in (mlci, mlci_gen):
        result = CliRunner().invoke(command, ["--version"])
        assert result.exit_code == 0
        assert build_info().version in result.output and str(build_info().commit) in result.output


def test_reports_record_the_ml_cicd_that_judged(tmp_path):
    paths = write_report(StageResult("gate", Verdict.PASS, "ok"), tmp_path)
    data = json.loads(paths["json"].read_text())
    assert data["mlcicd"] == {"version": build_info().version, "commit": build_info().commit}


def test_the_model_server_image_records_the_ml_cicd_it_serves_with():
    labels = oci_labels(model_name="m", version="3", run_id=None, base="b", env={}, revision=None,
                        server=BuildInfo("1.2.3", SHA))
    assert labels["io.mlcicd.version"] == "1.2.3" and labels["io.mlcicd.commit"] == SHA
    bare = oci_labels(model_name="m", version="3", run_id=None, base="b", env={}, revision=None,
                      server=BuildInfo("1.2.3", None))
    assert bare["io.mlcicd.version"] == "1.2.3" and "io.mlcicd.commit" not in bare
    assert oci_labels(model_name="m", version="3", run_id=None, base="b", env={},
                      revision=None)["io.mlcicd.version"] == build_info().version


def test_a_rebuild_without_git_carries_the_installed_version_and_commit():
    env = rebuild_env(BuildInfo("1.2.3", SHA, dirty=True))
    assert env["SETUPTOOLS_SCM_PRETEND_VERSION_FOR_ML_CICD"] == "1.2.3"
    assert env["SETUPTOOLS_SCM_PRETEND_METADATA_FOR_ML_CICD"] == f'{{node="g{SHA}", dirty=true}}'
    assert "SETUPTOOLS_SCM_PRETEND_METADATA_FOR_ML_CICD" not in rebuild_env(BuildInfo("1.2.3", None))


def test_an_exported_tree_without_git_builds_a_wheel_that_knows_its_commit(tmp_path):
    # What the e2e tests and a GitHub action's checkout install from: no .git, only the files git
    # archive substitutes. (A wheel build: a few seconds.)
    from consumer import export_tree  # tests/support: imports the delivery code, so only here

    tree = export_tree(tmp_path / "tree")
    assert not (tree / ".git").exists()
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).parent).stdout.strip()
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                    "-w", str(tmp_path / "wheels"), str(tree)], check=True, capture_output=True)
    wheel = next((tmp_path / "wheels").glob("ml_cicd-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        version_file = zf.read("mlcicd/_version.py").decode()
        archived = zf.read("mlcicd/COMMIT").decode().strip()
    assert archived == head
    assert "version = " in version_file
