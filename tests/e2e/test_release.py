"""The release, for real: .github/workflows/release.yml on act for the tag v9.8.7, then what users get.

A repository made from this checkout (its CHANGELOG cut for 9.8.7, as CONTRIBUTING's release
steps say) is committed and tagged `v9.8.7`; act runs the release workflow on that tag with every
job on this host: the build job builds the sdist and wheel, the pypi job uploads them, the image
job builds the job image from the wheel with buildah and pushes it, the github-release job creates
the release and moves `v9`. Then users take the release: pip installs `ml-cicd==9.8.7` from the
index into a fresh venv, the pushed image is pulled and run, and a GitLab pipeline includes a
component of the release (at `@9.8`: see GitLab below). Every test reads the one release run
(module fixtures: one act run, one index, one registry), so the file pays for the release once.

The stand-ins, all on 127.0.0.1, started here and stopped by PID, each for something this machine
cannot reach (no network but the package registries) or must not touch:

- PyPI → pypiserver (tests/support/package_index.py). The repository variable
  `PYPI_REPOSITORY_URL` points the pypi job at it, as a fork points it at TestPyPI; users install
  from it with `--index-url` and take the dependencies from this machine's own indexes.
- pypa/gh-action-pypi-publish → tests/e2e/stand-ins/pypi-publish: twine check and twine upload,
  what the real action does once trusted publishing gave it a token (act has no OIDC provider).
- ghcr.io → docker-registry over HTTPS with a login, as GHCR wants one (`github.actor` with the
  job's `GITHUB_TOKEN`). `JOB_IMAGE_REGISTRY` points the image job at it; the runner trusts its
  certificate through `SSL_CERT_FILE`, and buildah keeps its login and storage in files of this
  test (`REGISTRY_AUTH_FILE`, `CONTAINERS_STORAGE_CONF`), never the machine's.
- Docker Hub's python:3.11-slim, the Containerfile's base → the Debian Python base that `mlci image
  base` makes (debootstrap, cached per machine) with a venv at /usr/local (`python` and pip first
  on PATH, as in the slim image) and this network's CA, pushed to the same registry; a
  registries.conf sends `docker.io/library/python` there, as a mirror does for an air-gapped runner.
- actions/setup-python → tests/e2e/stand-ins/setup-python (a venv of this host's python3.11).
- actions/attest-build-provenance → tests/e2e/stand-ins/attest-build-provenance: the in-toto SLSA
  provenance statement of the subjects, unsigned (no Sigstore, no OIDC token), in a directory.
- actions/upload-artifact and download-artifact → tests/support/act_artifacts.py, the real
  actions' protocol against act's own artifact server.
- the `gh` CLI → tests/e2e/stand-ins/bin/gh, which records the release in a directory.
- github.com/org/ml-cicd and GitLab's org/ml-cicd → a local bare repository each (git's
  `insteadOf`). GitHub's has the tag the release verifies and takes the major tag the release
  moves; GitLab's has the plain semver tag `9.8.7` of the same commit and serves the components.
- GitLab → gitlab-ci-local, shell executor, with a fresh venv of this host's Python as the job's
  Python (the components' default image, python:3.11-slim, cannot be pulled here). The consumer
  includes the component at `@9.8`, the latest 9.8.x, which resolves to the release: gitlab-ci-local
  4.75 fills `component.version` only for a partial version (`@9`, `@9.8`) or `@~latest`, and leaves
  it unset for a full `@9.8.7`, which GitLab itself fills with 9.8.7.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from act_stand_ins import STAND_IN_BIN, run_act
from consumer import EXAMPLE, git
from image_registry import buildah as run_buildah
from image_registry import missing_tools, running_registry, self_signed_certificate
from package_index import PackageIndex, machine_indexes, running_index
from runners import NODE_BIN, ActRun, clean_env, require, tool

from mlcicd.gen.changelog import section
from mlcicd.images import base

pytestmark = pytest.mark.e2e

VERSION = "9.8.7"
TAG = f"v{VERSION}"
REPOSITORY = "org/ml-cicd"
WORKFLOW = ".github/workflows/release.yml"
# Who pushes the tag, and the GITHUB_TOKEN the jobs get: GHCR's login (the registry's only user).
ACTOR = "mlci-release"
TOKEN = "e2e-github-token"
GITLAB = "gitlab.example.com"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
HOST_CA = Path(os.environ.get("SSL_CERT_FILE") or "/etc/ssl/certs/ca-certificates.crt")

# python:3.11-slim as far as the job image's Containerfile relies on it: `python` with pip first on
# PATH (/usr/local/bin), apt-get, and this network's CA (PyPI and Debian are reached through it here).
PYTHON_SLIM = """\
FROM {base}
COPY network-ca.pem /etc/ssl/certs/network-ca.pem
RUN apt-get update -qq \\
 && apt-get install -y -qq --no-install-recommends python3-venv \\
 && rm -rf /var/lib/apt/lists/* \\
 && python3 -m venv /usr/local \\
 && printf '[global]\\ncert = /etc/ssl/certs/network-ca.pem\\n' > /etc/pip.conf
"""


@dataclass(frozen=True)
class Project:
    root: Path  # the tagged repository act runs in
    commit: str  # what v9.8.7 (and GitLab's 9.8.7) point at
    origin: Path  # the bare repository standing for github.com/org/ml-cicd
    gitlab: Path  # the one standing for GitLab's org/ml-cicd


@dataclass(frozen=True)
class Release:
    run: ActRun
    project: Project
    index: PackageIndex
    registry: str  # host:port
    certs: Path  # a certs.d-style directory trusting the registry
    releases: Path  # where the gh stand-in records GitHub releases
    attestations: Path  # where the attest stand-in writes its statements


def buildah(storage: Path, *args: str, driver: str = "vfs", timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """buildah on a private storage root; a failure shows buildah's own words."""
    try:
        return run_buildah(storage, *args, driver=driver, timeout=timeout)
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"buildah {args[0]} failed ({exc.returncode}):\n{exc.stdout[-2000:]}\n{exc.stderr[-3000:]}")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("release")


@pytest.fixture(scope="module")
def project(suite: Path, home: Path) -> Project:
    """This checkout with its CHANGELOG cut for 9.8.7, committed and tagged v9.8.7, and its bare
    copies on GitHub (tag v9.8.7) and GitLab (tag 9.8.7)."""
    root = home / "ml-cicd"
    shutil.copytree(suite, root)
    changelog = root / "CHANGELOG.md"
    text = changelog.read_text(encoding="utf-8")
    assert "## [Unreleased]" in text
    today = datetime.date.today().isoformat()
    changelog.write_text(text.replace("## [Unreleased]", f"## [Unreleased]\n\n## [{VERSION}] - {today}", 1),
                         encoding="utf-8")
    git(root, "init", "-q", "-b", "main")
    git(root, "remote", "add", "origin", f"https://github.com/{REPOSITORY}.git")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", f"release {VERSION}")
    git(root, "tag", TAG)
    commit = git(root, "rev-parse", "HEAD")
    origin = home / "github" / "ml-cicd.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(root), str(origin)], check=True, capture_output=True)
    # GitLab's copy has the CI/CD Catalog's plain semver tag only (CONTRIBUTING, "Releasing").
    gitlab = home / "gitlab" / "ml-cicd.git"
    subprocess.run(["git", "init", "-q", "--bare", str(gitlab)], check=True, capture_output=True)
    git(root, "push", "-q", str(gitlab), "main", f"{commit}:refs/tags/{VERSION}")
    return Project(root, commit, origin, gitlab)


@pytest.fixture(scope="module")
def index(home: Path) -> Iterator[PackageIndex]:
    with running_index(home / "index") as found:
        yield found


@pytest.fixture(scope="module")
def registry(home: Path) -> Iterator[tuple[str, Path]]:
    """GHCR's stand-in: HTTPS, one user; (host:port, its certificate)."""
    missing = missing_tools("debootstrap")
    require(not missing, f"needs {', '.join(missing)} (make system-test installs them)")
    cert, key = self_signed_certificate(home / "tls")
    with running_registry(home / "registry", users={ACTOR: TOKEN}, tls=(cert, key)) as address:
        yield address, cert


@pytest.fixture(scope="module")
def python_slim(registry: tuple[str, Path], home: Path) -> str:
    """python:3.11-slim's stand-in, built on the cached Debian base and pushed to the registry."""
    address, _ = registry
    storage = home / "python-slim-storage"
    env = {**os.environ, "MLCI_BUILDAH_ROOT": str(storage)}
    spec = base.BaseSpec()
    archive = base.ensure_archive(spec, base.cache_dir(env), env, lambda line: None)
    local = base.load(archive, spec, env, lambda line: None)
    context = home / "python-slim"
    context.mkdir()
    shutil.copy(HOST_CA, context / "network-ca.pem")
    (context / "Containerfile").write_text(PYTHON_SLIM.format(base=local))
    ref = f"{address}/library/python:3.11-slim"
    buildah(storage, "build", "--isolation", "chroot", "--timestamp", "0", "--identity-label=false", "-t", ref,
            "-f", str(context / "Containerfile"), str(context), timeout=1800)
    buildah(storage, "push", "--tls-verify=false", "--creds", f"{ACTOR}:{TOKEN}", ref, f"docker://{ref}", timeout=600)
    shutil.rmtree(storage, ignore_errors=True)
    return ref


def _runner_config(work: Path, address: str, cert: Path, origin: Path) -> dict[str, str]:
    """The runner machine's settings (files under ``work``), as the environment act and its jobs get."""
    work.mkdir(parents=True)
    (work / "home").mkdir()
    # github.com/org/ml-cicd is the bare repository: the gh stand-in's --verify-tag and the major tag's push.
    (work / "home" / ".gitconfig").write_text(
        f'[url "{origin.as_uri()}"]\n\tinsteadOf = https://github.com/{REPOSITORY}.git\n')
    (work / "trust.pem").write_text(HOST_CA.read_text() + "\n" + cert.read_text())
    (work / "registries.conf").write_text(
        "unqualified-search-registries = []\n\n"
        '[[registry]]\nprefix = "docker.io/library/python"\n'
        f'location = "{address}/library/python"\n')
    # overlay, as a runner's storage is by default: vfs would copy the ~1.5 GB image for every layer and container.
    (work / "storage.conf").write_text(
        f'[storage]\ndriver = "overlay"\ngraphroot = "{work / "containers" / "root"}"\n'
        f'runroot = "{work / "containers" / "runroot"}"\n')
    (work / "releases").mkdir()
    (work / "attestations").mkdir()
    return clean_env(
        HOME=str(work / "home"),
        PIP_CACHE_DIR=str(Path.home() / ".cache" / "pip"),
        PATH=f"{STAND_IN_BIN}{os.pathsep}{clean_env()['PATH']}",
        MLCI_E2E_TWINE=str(Path(sys.executable).with_name("twine")),
        MLCI_E2E_RELEASES=str(work / "releases"),
        MLCI_E2E_ATTESTATIONS=str(work / "attestations"),
        SSL_CERT_FILE=str(work / "trust.pem"),
        CONTAINERS_REGISTRIES_CONF=str(work / "registries.conf"),
        CONTAINERS_STORAGE_CONF=str(work / "storage.conf"),
        REGISTRY_AUTH_FILE=str(work / "auth.json"),
        # Hosted runners run containers with an OCI runtime; chroot needs none.
        BUILDAH_ISOLATION="chroot",
    )


@pytest.fixture(scope="module")
def release(project: Project, index: PackageIndex, registry: tuple[str, Path], python_slim: str,
            home: Path) -> Release:
    """The one act run of the release workflow on the tag."""
    address, cert = registry
    work = home / "runner"
    env = _runner_config(work, address, cert, project.origin)
    event = work / "event.json"
    event.write_text(json.dumps({"ref": f"refs/tags/{TAG}", "after": project.commit}))
    run = run_act(project.root, WORKFLOW, "-e", str(event), "--actor", ACTOR, "-s", f"GITHUB_TOKEN={TOKEN}",
                  "--var", f"PYPI_REPOSITORY_URL={index.upload_url}", "--var", f"JOB_IMAGE_REGISTRY={address}/org",
                  env=env, work=work, timeout=3600)
    (work / "act.log").write_text(run.log)
    certs = home / "certs.d"
    certs.mkdir()
    shutil.copy(cert, certs / "ca.crt")
    return Release(run, project, index, address, certs, work / "releases", work / "attestations")


def test_the_release_workflow_publishes_package_image_and_github_release(release: Release) -> None:
    run = release.run
    assert run.code == 0, run.tail(120)
    assert run.results == {job: "success" for job in ("build", "pypi", "image", "provenance", "github-release")}, \
        run.tail(120)
    assert run.outputs["build"]["version"] == VERSION
    wheel, sdist = f"ml_cicd-{VERSION}-py3-none-any.whl", f"ml_cicd-{VERSION}.tar.gz"
    # The index has the sdist and the wheel of the version.
    assert release.index.files("ml-cicd") == sorted([wheel, sdist])
    # The GitHub release: named by the tag, its notes the CHANGELOG section and the pinned job image,
    # the same wheel as on the index, and the image's SBOM.
    notes_dir = release.releases / TAG
    assert (notes_dir / "title").read_text() == TAG
    notes = (notes_dir / "notes.md").read_text()
    changelog = section((release.project.root / "CHANGELOG.md").read_text(encoding="utf-8"), VERSION)
    assert notes.startswith(changelog), notes[:400]
    image = re.search(r"^Job image: (\S+)$", notes, re.M)
    assert image and re.fullmatch(rf"{re.escape(release.registry)}/org/ml-cicd:{VERSION}@sha256:[0-9a-f]{{64}}",
                                  image.group(1)), notes[-300:]
    assets = notes_dir / "assets"
    assert sorted(p.name for p in assets.iterdir()) == sorted([wheel, sdist, "ml-cicd-image.sbom.cdx.json"])
    assert (assets / wheel).read_bytes() == (release.index.packages / wheel).read_bytes()  # built once
    sbom = json.loads((assets / "ml-cicd-image.sbom.cdx.json").read_text())
    assert sbom["bomFormat"] == "CycloneDX"
    listed = {(re.sub(r"[-_.]+", "-", str(c.get("name"))).lower(), c.get("version"))
              for c in sbom.get("components", [])}
    assert ("ml-cicd", VERSION) in listed
    # Build provenance (SLSA v1) names exactly what was published: the index's sdist and wheel by
    # their bytes, the image by the digest the registry has, built from the tagged commit.
    statements = [json.loads(p.read_text()) for p in sorted(release.attestations.glob("*.intoto.json"))]
    assert {s["predicateType"] for s in statements} == {"https://slsa.dev/provenance/v1"}, statements
    subjects = {(sub["name"], sub["digest"]["sha256"]) for s in statements for sub in s["subject"]}
    tagged, image_digest = image.group(1).split("@sha256:")
    assert subjects == {
        *((name, hashlib.sha256((release.index.packages / name).read_bytes()).hexdigest()) for name in (wheel, sdist)),
        (tagged.rsplit(":", 1)[0], image_digest),  # <registry>/org/ml-cicd without the tag
    }, subjects
    assert {s["predicate"]["buildDefinition"]["resolvedDependencies"][0]["digest"]["gitCommit"]
            for s in statements} == {release.project.commit}
    # The major tag moved to the release's commit.
    assert git(release.project.origin, "rev-parse", "refs/tags/v9^{commit}") == release.project.commit


def test_pip_installs_the_release_from_the_index(release: Release, tmp_path: Path) -> None:
    assert release.index.files("ml-cicd"), release.run.tail(80)
    venv = tmp_path / "venv"
    subprocess.run([str(Path(sys.base_prefix) / "bin" / "python3"), "-m", "venv", str(venv)], check=True)
    indexes = machine_indexes()
    pip = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q",
         "--index-url", release.index.simple, *(a for url in indexes for a in ("--extra-index-url", url)),
         f"ml-cicd=={VERSION}"],
        env=clean_env(), capture_output=True, text=True, timeout=900)
    assert pip.returncode == 0, pip.stdout[-2000:] + pip.stderr[-2000:]
    version = subprocess.run([str(venv / "bin" / "mlci"), "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.strip() == f"mlci, version {VERSION} (commit {release.project.commit})"


def test_the_pushed_job_image_runs_the_release(release: Release, tmp_path: Path) -> None:
    notes = (release.releases / TAG / "notes.md").read_text()
    image = re.search(r"^Job image: (\S+)$", notes, re.M)
    assert image, notes[-300:]
    # A fresh storage: the image comes from the registry, by the digest the release notes pin.
    name_tag, digest = image.group(1).split("@")
    auth = ["--cert-dir", str(release.certs), "--creds", f"{ACTOR}:{TOKEN}"]
    storage = tmp_path / "storage"
    container = buildah(storage, "from", *auth, f"{name_tag.rsplit(':', 1)[0]}@{digest}", driver="overlay",
                        timeout=1200).stdout.strip()
    try:
        config = json.loads(buildah(storage, "inspect", container, driver="overlay").stdout)["OCIv1"]["config"]
        labels = config["Labels"]
        assert labels["org.opencontainers.image.version"] == VERSION
        assert labels["org.opencontainers.image.revision"] == release.project.commit
        ran = buildah(storage, "run", "--isolation", "chroot", container, "--", "mlci", "--version", driver="overlay",
                      timeout=600)
        assert ran.stdout.strip() == f"mlci, version {VERSION} (commit {release.project.commit})"
    finally:
        buildah(storage, "rm", container, driver="overlay")


def test_a_gitlab_component_at_the_release_tag_runs_the_release(release: Release, tmp_path: Path) -> None:
    """`component: …/validate-data@9.8` (the latest 9.8.x: the release) installs ml-cicd 9.8.7 from
    the index the project's pip variables name and runs it; the job's `mlci --version` says so.

    The consumer adds `mlci --version` as the job's after_script. (gitlab-ci-local's shell isolation
    syncs the build directory afresh before after_script, so the job's files, its report among them,
    are gone by then; GitLab keeps them. The version line is what this test reads.)"""
    assert release.index.files("ml-cicd"), release.run.tail(80)
    binary = tool("gitlab-ci-local", NODE_BIN)
    consumer = tmp_path / "consumer"
    consumer.mkdir()
    for name in ("data", "mlci.yaml"):
        src = EXAMPLE / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, consumer / name)
    (consumer / ".gitignore").write_text(".gitlab-ci-local/\nmlci-report/\n")
    (consumer / ".gitlab-ci.yml").write_text(
        "stages: [validate]\n"
        "include:\n"
        f"  - component: $CI_SERVER_FQDN/{REPOSITORY}/validate-data@{VERSION.rsplit('.', 1)[0]}\n"
        "mlci-validate-data:\n"
        "  after_script:\n"
        "    - mlci --version\n")
    git(consumer, "init", "-q", "-b", "main")
    git(consumer, "remote", "add", "origin", f"https://{GITLAB}/group/consumer.git")
    git(consumer, "add", "-A")
    git(consumer, "commit", "-q", "-m", "validate the data with ml-cicd 9.8.7")
    # The job's Python (python:3.11-slim's part here): a fresh venv, first on PATH.
    venv = tmp_path / "job-python"
    subprocess.run([str(Path(sys.base_prefix) / "bin" / "python3"), "-m", "venv", str(venv)], check=True)
    (tmp_path / "home").mkdir()
    env = clean_env(HOME=str(tmp_path / "home"), PIP_CACHE_DIR=str(Path.home() / ".cache" / "pip"))
    env["PATH"] = os.pathsep.join([str(venv / "bin"), str(NODE_BIN), env["PATH"]])
    # GitLab's org/ml-cicd is its bare repository, by each spelling gitlab-ci-local uses (gitlab_runner.py).
    urls = [f"https://{GITLAB}/{REPOSITORY}.git", f"git@{GITLAB}:{REPOSITORY}.git",
            f"https://{GITLAB}:443/{REPOSITORY}.git"]
    env["GIT_CONFIG_COUNT"] = str(len(urls))
    for i, url in enumerate(urls):
        env[f"GIT_CONFIG_KEY_{i}"] = f"url.{release.project.gitlab.as_uri()}.insteadOf"
        env[f"GIT_CONFIG_VALUE_{i}"] = url
    # The project's CI/CD variables: pip installs from the company index (here, the release's), the
    # dependencies from the public one(s).
    variables = [f"PIP_INDEX_URL={release.index.simple}", f"PIP_EXTRA_INDEX_URL={' '.join(machine_indexes())}"]
    argv = [binary, "--force-shell-executor", "--shell-isolation", "--no-artifacts-to-source",
            *(a for v in variables for a in ("--variable", v))]
    proc = subprocess.run(argv, cwd=consumer, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=1800)
    log = ANSI.sub("", proc.stdout + proc.stderr)
    tail = "\n".join(log.splitlines()[-80:])
    assert proc.returncode == 0, tail
    assert re.search(r"^\s*PASS\s+mlci-validate-data\s*$", log, re.M), tail
    assert f"mlci, version {VERSION} (commit {release.project.commit})" in log, tail
    assert "All data checks passed" in log, tail  # the stage itself ran, on the consumer's data
    # What the job installed into its Python: the release, from the index.
    installed = subprocess.run([str(venv / "bin" / "mlci"), "--version"], capture_output=True, text=True, check=True)
    assert installed.stdout.strip() == f"mlci, version {VERSION} (commit {release.project.commit})"
