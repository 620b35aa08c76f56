"""The release, for real: .github/workflows/release.yml on act for a tag, then what it published.

A throwaway git repository of this checkout is prepared as CONTRIBUTING.md says a maintainer
prepares a release (the CHANGELOG's Unreleased entries become section 9.8.7), committed, tagged
v9.8.7 and pushed to a bare repository that stands for github.com/org/ml-cicd (git reaches it
through `url.<bare>.insteadOf`). act runs the release workflow for the tag push (an event with
`ref: refs/tags/v9.8.7`), every job on this host:

- build: setuptools-scm reads 9.8.7 from the tag; sdist, wheel and the CHANGELOG section.
- pypi: the distributions go to a local pypiserver (`vars.PYPI_REPOSITORY_URL`) through a
  stand-in of pypa/gh-action-pypi-publish that runs twine (act has no OIDC token to trade).
- image: buildah builds .github/job-image/Containerfile from the wheel and pushes it to a local
  docker-registry standing for ghcr.io (`vars.JOB_IMAGE_REGISTRY`; HTTPS with its own CA, and a
  login for the workflow's actor and token). There is no Docker Hub: the runner's registries.conf
  maps docker.io/library/python to a python:3.11-slim stand-in in that registry (Debian's Python
  with a venv at /usr/local, where the official image keeps its own).
- github-release: GitHub's API is out of reach, so `gh` is a stand-in on PATH that records the
  release it is asked to create (title, notes, assets); the major tag v9 moves by a real
  `git push` to the bare repository.

Remote actions map to stand-ins in tests/e2e/stand-ins (see tests/support/act_stand_ins.py).
The tests after the run use what it published, each the way a user would: a fresh venv installs
ml-cicd==9.8.7 from the index, the pushed image is pulled into empty storage and runs, and a
GitLab pipeline on gitlab-ci-local includes a component of the release and installs ml-cicd
9.8.7 from the index through the component's default install.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
import requests
from act_stand_ins import STAND_IN_BIN, run_act
from consumer import EXAMPLE, REPO, git
from image_registry import buildah, missing_tools, running_registry, self_signed_certificate
from runners import NODE_BIN, ActRun, clean_env, require, tool

from mlcicd.delivery.targets.processes import free_port
from mlcicd.images import base as debian

pytestmark = pytest.mark.e2e

VERSION = "9.8.7"
TAG = f"v{VERSION}"
REPOSITORY = "org/ml-cicd"
GITHUB = "https://github.com"  # act's github.server_url
GITLAB = "gitlab.example.com"
OVERLAY = "overlay"
ACTOR, TOKEN = "release-bot", "e2e-token"  # github.actor (act --actor) and the GITHUB_TOKEN secret
WORKFLOW = ".github/workflows/release.yml"
# python:3.11-slim keeps its Python, with pip, under /usr/local: a venv there has the same paths.
# This machine reaches PyPI through a TLS-inspecting proxy: like an image built behind one, the
# stand-in trusts the machine's CAs (the real image trusts the public CAs PyPI's certificate chains to).
PYTHON_SLIM = """\
FROM {base}
COPY site-ca.pem /etc/ssl/site-ca.pem
ENV PIP_CERT=/etc/ssl/site-ca.pem
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends python3-venv \\
 && rm -rf /var/lib/apt/lists/* && python3 -m venv /usr/local
"""


def _run(argv: list[str], **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=True, **kw)


@dataclass(frozen=True)
class Release:
    root: Path  # the tagged repository act runs in
    github: Path  # the bare repository standing for github.com/org/ml-cicd
    gitconfig: Path  # a global git config that sends GitHub's URL of the project to `github`
    sha: str


@pytest.fixture(scope="module")
def release(suite: Path, tmp_path_factory: pytest.TempPathFactory) -> Release:
    work = tmp_path_factory.mktemp("release")
    root = work / "ml-cicd"
    shutil.copytree(suite, root)
    # The export holds these as `git archive` fills them in (export-subst); a repository holds the
    # templates, which setuptools-scm ignores in favour of the sdist's PKG-INFO when it builds the wheel.
    for name in (".git_archival.txt", "src/mlcicd/COMMIT"):
        shutil.copy(REPO / name, root / name)
    changelog = root / "CHANGELOG.md"
    text = changelog.read_text(encoding="utf-8")
    assert "## [Unreleased]\n" in text
    changelog.write_text(text.replace("## [Unreleased]\n", f"## [Unreleased]\n\n## [{VERSION}] - {date.today()}\n", 1),
                         encoding="utf-8")
    git(root, "init", "-q", "-b", "main")
    git(root, "remote", "add", "origin", f"{GITHUB}/{REPOSITORY}.git")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", f"release {VERSION}")
    git(root, "tag", "-a", TAG, "-m", f"ml-cicd {VERSION}")
    github = work / "github" / "ml-cicd.git"
    _run(["git", "clone", "-q", "--bare", str(root), str(github)])
    gitconfig = work / "gitconfig"
    gitconfig.write_text(f'[url "{github.as_uri()}"]\n\tinsteadOf = {GITHUB}/{REPOSITORY}.git\n')
    return Release(root, github, gitconfig, git(root, "rev-parse", "HEAD"))


@pytest.fixture(scope="module")
def package_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """pypiserver on 127.0.0.1 accepting uploads; yields its base URL (…/simple/ is the index).

    A project it does not hold is redirected to the machine's own index (pypiserver's fallback), so
    `PIP_INDEX_URL=<this>/simple/` alone finds ml-cicd here and its dependencies where pip always does.
    """
    home = tmp_path_factory.mktemp("package-index")
    (home / "packages").mkdir()
    port = free_port()
    server = tool("pypi-server", Path(sys.executable).parent)
    fallback = ["--fallback-url", os.environ["PIP_INDEX_URL"]] if os.environ.get("PIP_INDEX_URL") else []
    argv = [server, "run", "--host", "127.0.0.1", "--port", str(port), "--authenticate", ".", "--passwords", ".",
            *fallback, str(home / "packages")]
    url = f"http://127.0.0.1:{port}"
    with (home / "pypiserver.log").open("w") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"{url}/health", timeout=1).ok:
                    break
            except requests.ConnectionError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"pypiserver did not start:\n{(home / 'pypiserver.log').read_text()}")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@dataclass(frozen=True)
class Containers:
    registry: str  # host:port of the registry standing for ghcr.io: HTTPS, login required
    storage: Path  # the runner's buildah storage (root/, runroot/, vfs: image_registry's layout)
    certs: Path  # a --cert-dir trusting the registry, for the tests' own pulls
    env: dict[str, str]  # the runner's containers configuration

    def login(self) -> list[str]:
        return ["--cert-dir", str(self.certs), "--creds", f"{ACTOR}:{TOKEN}"]


@pytest.fixture(scope="module")
def containers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Containers]:
    """A registry like ghcr.io (HTTPS, a login for the workflow's actor and token) and the runner's
    buildah setup, as a self-hosted runner behind a mirror is configured: private vfs storage,
    chroot isolation, the registry's CA in the trust store (SSL_CERT_FILE, which buildah's Go
    reads), its own auth file, and a registries.conf that serves docker.io/library/python from
    the registry (no Docker Hub here)."""
    missing = missing_tools("debootstrap")
    require(not missing, f"needs {', '.join(missing)} for the job image (make system-test installs them)")
    home = tmp_path_factory.mktemp("containers")
    cert, key = self_signed_certificate(home / "tls")
    certs = home / "certs.d"
    certs.mkdir()
    shutil.copy(cert, certs / "ca.crt")
    system_cas = Path(os.environ.get("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt")).read_text()
    (home / "ca-bundle.pem").write_text(system_cas + cert.read_text())
    storage = home / "buildah"
    with running_registry(home / "registry", users={ACTOR: TOKEN}, tls=(cert, key)) as registry:
        # The python:3.11-slim stand-in, on the Debian Python base (debootstrap once per machine, cached).
        archive = debian.ensure_archive(debian.BaseSpec(), debian.cache_dir(os.environ), os.environ, lambda line: None)
        local_base = buildah(storage, "pull", "--quiet", f"oci-archive:{archive}", driver=OVERLAY).stdout.strip()
        (home / "python-slim").mkdir()
        (home / "python-slim" / "site-ca.pem").write_text(system_cas)
        (home / "python-slim" / "Containerfile").write_text(PYTHON_SLIM.format(base=local_base))
        slim = f"{registry}/library/python:3.11-slim"
        buildah(storage, "build", "--isolation", "chroot", "--timestamp", "0", "-t", slim, str(home / "python-slim"),
                driver=OVERLAY, timeout=900)  # apt-get from Debian's mirror: slow on a busy machine
        buildah(storage, "push", "--cert-dir", str(certs), "--creds", f"{ACTOR}:{TOKEN}", slim, f"docker://{slim}",
                driver=OVERLAY)
        (home / "registries.conf").write_text(
            'unqualified-search-registries = []\n'
            f'[[registry]]\nprefix = "docker.io/library/python"\nlocation = "{registry}/library/python"\n')
        # overlay, not image_registry's usual vfs: vfs copies the whole ~1 GB tree for every
        # container and layer of the job image (several GB written, minutes just to delete).
        (home / "storage.conf").write_text(
            f'[storage]\ndriver = "overlay"\ngraphroot = "{storage / "root"}"\nrunroot = "{storage / "runroot"}"\n')
        runner = {"CONTAINERS_REGISTRIES_CONF": str(home / "registries.conf"),
                  "CONTAINERS_STORAGE_CONF": str(home / "storage.conf"), "BUILDAH_ISOLATION": "chroot",
                  "SSL_CERT_FILE": str(home / "ca-bundle.pem"), "REGISTRY_AUTH_FILE": str(home / "auth.json")}
        try:
            yield Containers(registry, storage, certs, runner)
        finally:
            remove_storage(storage)


def remove_storage(storage: Path) -> None:
    """Delete a buildah storage root (its containers first, so no overlay stays mounted)."""
    if (storage / "root").is_dir():
        subprocess.run(["buildah", "--root", str(storage / "root"), "--runroot", str(storage / "runroot"),
                        "--storage-driver", OVERLAY, "rm", "--all"], capture_output=True, timeout=300)
    shutil.rmtree(storage, ignore_errors=True)


@dataclass(frozen=True)
class Published:
    run: ActRun
    seconds: float
    releases: Path  # what the gh stand-in recorded: <tag>/{title,notes.md,assets/}
    image: str  # <registry>/ml-cicd:<version>@<digest>, as the image job wrote it


@pytest.fixture(scope="module")
def published(release: Release, package_index: str, containers: Containers,
              tmp_path_factory: pytest.TempPathFactory) -> Published:
    """One act run of the release workflow for the tag; every test below uses what it published."""
    work = tmp_path_factory.mktemp("release-run")
    event = work / "event.json"
    event.write_text(json.dumps({"ref": f"refs/tags/{TAG}", "ref_name": TAG, "ref_type": "tag",
                                 "repository": {"full_name": REPOSITORY, "owner": {"login": "org"}}}))
    env = clean_env(
        HOME=str(work / "home"), PIP_CACHE_DIR=str(Path.home() / ".cache" / "pip"),
        PATH=f"{STAND_IN_BIN}{os.pathsep}{clean_env()['PATH']}", GIT_CONFIG_GLOBAL=str(release.gitconfig),
        MLCI_E2E_ARTIFACTS=str(work / "artifacts"), MLCI_E2E_RELEASES=str(work / "releases"),
        MLCI_E2E_TWINE=tool("twine", Path(sys.executable).parent), **containers.env)
    started = time.monotonic()
    run = run_act(release.root, WORKFLOW, "--eventpath", str(event), "--actor", ACTOR,
                  "--secret", f"GITHUB_TOKEN={TOKEN}", "--var", f"PYPI_REPOSITORY_URL={package_index}/",
                  "--var", f"JOB_IMAGE_REGISTRY={containers.registry}", env=env, timeout=1500)
    seconds = time.monotonic() - started
    (work / "act.log").write_text(run.log)  # the whole run, for a failure's post-mortem
    print(f"\nrelease workflow on act: {seconds:.0f} s (log: {work / 'act.log'})")
    assert run.code == 0, run.tail(120)
    image_txt = work / "artifacts" / "image" / "image.txt"
    return Published(run, seconds, work / "releases", image_txt.read_text().strip())


def test_the_release_workflow_publishes_the_tag(published: Published, release: Release, package_index: str,
                                                 containers: Containers) -> None:
    run = published.run
    assert run.results == dict.fromkeys(("build", "pypi", "image", "github-release"), "success"), run.tail(120)
    assert run.outputs["build"]["version"] == VERSION  # setuptools-scm read the tag

    # PyPI's stand-in holds the sdist and the wheel of the tag.
    page = requests.get(f"{package_index}/simple/ml-cicd/", timeout=10)
    assert page.ok and f"ml_cicd-{VERSION}-py3-none-any.whl" in page.text and f"ml_cicd-{VERSION}.tar.gz" in page.text

    # The registry holds the job image under the version, at the digest the release names.
    ref, digest = published.image.split("@")
    assert ref == f"{containers.registry}/ml-cicd:{VERSION}" and digest.startswith("sha256:")
    inspect = json.loads(_run(["skopeo", "inspect", *containers.login(), f"docker://{ref}"]).stdout)
    assert inspect["Digest"] == digest
    assert inspect["Labels"]["io.mlcicd.version"] == VERSION
    assert inspect["Labels"]["io.mlcicd.commit"] == release.sha

    # The GitHub release: the CHANGELOG section, the image, the distributions and the image's SBOM.
    recorded = published.releases / TAG
    assert (recorded / "title").read_text() == TAG
    notes = (recorded / "notes.md").read_text()
    assert f"Job image: {published.image}" in notes
    assert "mlci-gen sync" in notes  # an entry of the section (the Unreleased entries became 9.8.7's)
    assert {p.name for p in (recorded / "assets").iterdir()} == {
        f"ml_cicd-{VERSION}-py3-none-any.whl", f"ml_cicd-{VERSION}.tar.gz", "ml-cicd-image.sbom.cdx.json"}
    sbom = json.loads((recorded / "assets" / "ml-cicd-image.sbom.cdx.json").read_text())
    assert {"name": "ml-cicd", "version": VERSION}.items() <= next(
        c for c in sbom["components"] if c["name"] == "ml-cicd").items()

    # The major tag moved to the release's commit on "GitHub".
    moved = _run(["git", "ls-remote", str(release.github), "refs/tags/v9"]).stdout.split()
    assert moved[:1] == [release.sha]


def test_pip_installs_the_release_from_the_index(published: Published, release: Release, package_index: str,
                                                 tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    _run([str(Path(sys.base_prefix) / "bin" / "python3"), "-m", "venv", str(venv)])
    env = clean_env()  # keeps the machine's PIP_* settings and CA bundles
    report = tmp_path / "install.json"
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
          "--index-url", f"{package_index}/simple/", "--report", str(report), f"ml-cicd=={VERSION}"], env=env,
         timeout=600)
    installed = {item["metadata"]["name"]: item for item in json.loads(report.read_text())["install"]}
    assert installed["ml-cicd"]["download_info"]["url"].startswith(f"{package_index}/")
    assert _run([str(venv / "bin" / "mlci"), "--version"], env=env).stdout.strip() == (
        f"mlci, version {VERSION} (commit {release.sha})")


def test_the_pushed_job_image_runs_the_release(published: Published, release: Release, containers: Containers,
                                               tmp_path: Path) -> None:
    # Empty storage: everything that runs comes from the registry.
    storage = tmp_path / "pull"
    ref = published.image.split("@")[0]
    try:
        container = buildah(storage, "from", *containers.login(), ref, driver=OVERLAY, timeout=900).stdout.strip()
        run = ["run", "--isolation", "chroot", container, "--"]
        version = buildah(storage, *run, "mlci", "--version", driver=OVERLAY).stdout
        assert version.strip() == f"mlci, version {VERSION} (commit {release.sha})"
        # Every extra: the libraries of each stage import, and pip finds nothing missing.
        buildah(storage, *run, "python", "-c", "import boto3, fairlearn, great_expectations, matplotlib, mlflow, "
                "pandas, pyarrow, scipy, sklearn", driver=OVERLAY)
        buildah(storage, *run, "python", "-m", "pip", "check", driver=OVERLAY)
    finally:
        remove_storage(storage)


def test_a_gitlab_component_of_the_release_installs_it_from_the_index(published: Published, release: Release,
                                                                      package_index: str, tmp_path: Path) -> None:
    """`component: $CI_SERVER_FQDN/org/ml-cicd/validate-data@9.8`: the job installs ml-cicd 9.8.7 by default.

    The component installs `ml-cicd[data]==$[[ component.version ]]` unless the `package` input
    says otherwise; the index is the standard PIP_INDEX_URL, a CI/CD variable. gitlab-ci-local
    (4.75) fills in `component.version` for a partial version (`@9`, `@9.8`) or `~latest`, which
    it resolves against the project's tags as GitLab does, but leaves it null for an exact
    `@9.8.7` (GitLab gives 9.8.7 there too): so the consumer pins `@9.8`, and the job sees 9.8.7.
    """
    binary = tool("gitlab-ci-local", NODE_BIN)
    # GitLab's copy of the project: the same commit, tagged as GitLab's CI/CD Catalog wants it (X.Y.Z).
    gitlab = tmp_path / "gitlab" / "ml-cicd.git"
    _run(["git", "clone", "-q", "--bare", str(release.root), str(gitlab)])
    git(gitlab, "tag", "-d", TAG)
    git(gitlab, "tag", VERSION, release.sha)
    consumer = tmp_path / "consumer"
    consumer.mkdir()
    shutil.copytree(EXAMPLE / "data", consumer / "data")
    shutil.copy(EXAMPLE / "mlci.yaml", consumer / "mlci.yaml")
    (consumer / ".gitignore").write_text(".gitlab-ci-local/\nmlci-report/\n")
    (consumer / ".gitlab-ci.yml").write_text(
        "stages: [validate]\n"
        "include:\n"
        f"  - component: $CI_SERVER_FQDN/{REPOSITORY}/validate-data@9.8\n"
        "mlci-validate-data:\n"
        "  after_script:\n"
        "    - mlci --version\n")
    git(consumer, "init", "-q", "-b", "main")
    git(consumer, "remote", "add", "origin", f"https://{GITLAB}/group/consumer.git")
    git(consumer, "add", "-A")
    git(consumer, "commit", "-q", "-m", "validate the data with ml-cicd 9.8")

    # The job's Python (shell executor): an empty venv, so ml-cicd can only come from the job's install.
    venv = tmp_path / "job-python"
    _run([str(Path(sys.base_prefix) / "bin" / "python3"), "-m", "venv", str(venv)])
    env = clean_env()
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{NODE_BIN}{os.pathsep}{env['PATH']}"
    # gitlab-ci-local reaches the component project by three spellings of its URL (clone, ssh,
    # ls-remote for the tags): all lead to GitLab's bare copy.
    urls = [f"https://{GITLAB}/{REPOSITORY}.git", f"git@{GITLAB}:{REPOSITORY}.git",
            f"https://{GITLAB}:443/{REPOSITORY}.git"]
    env["GIT_CONFIG_COUNT"] = str(len(urls))
    for i, url in enumerate(urls):
        env[f"GIT_CONFIG_KEY_{i}"] = f"url.{gitlab.as_uri()}.insteadOf"
        env[f"GIT_CONFIG_VALUE_{i}"] = url
    proc = subprocess.run([binary, "--force-shell-executor", "--shell-isolation", "--no-artifacts-to-source",
                           "--variable", f"PIP_INDEX_URL={package_index}/simple/"], cwd=consumer, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=1800)
    log = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr)
    tail = "\n".join(log.splitlines()[-60:])
    assert proc.returncode == 0, tail
    assert f"mlci, version {VERSION} (commit {release.sha})" in log, tail
    assert re.search(r"^\s*PASS\s+mlci-validate-data\s*$", log, re.MULTILINE), tail  # the stage ran on 9.8.7
