"""Registry login for the push: ECR, GHCR and the GitLab registry, from what the CI job already has.

- **ECR**: a 12-hour token from ``ecr:GetAuthorizationToken`` with the job's AWS credentials
  (OIDC role, instance profile, env keys: whatever boto3 finds). Region and account come from
  the registry host ``<account>.dkr.ecr.<region>.amazonaws.com``.
- **GHCR**: the job's ``GITHUB_TOKEN`` (``permissions: packages: write``) as ``GITHUB_ACTOR``.
- **GitLab**: ``CI_REGISTRY_USER`` / ``CI_REGISTRY_PASSWORD`` (or ``gitlab-ci-token`` /
  ``CI_JOB_TOKEN``), for the registry named by ``CI_REGISTRY``.

Secrets come from environment variables only, never from inputs or mlci.yaml. The login
goes into a temporary auth file in a private directory outside the project (seeded with
the user's own auth file, so a base image from another private registry still pulls),
handed to the builder through ``REGISTRY_AUTH_FILE`` (buildah, podman) or ``DOCKER_CONFIG``
(docker), and deleted when the stage ends; the password reaches the builder on stdin.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from mlcicd.errors import UsageError

LOGIN_WHERE = "mlci.yaml: image.login"
_ECR = re.compile(r"^(?P<account>\d{12})\.dkr\.ecr(?:-fips)?\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$")
LOGIN_TIMEOUT = 120.0


@dataclass(frozen=True)
class Credentials:
    registry: str  # host[:port] the credentials are for
    username: str
    password: str
    source: str  # where they came from, for the report (never the secret)


def registry_host(registry: str) -> str:
    return registry.split("/", 1)[0]


def detect(registry: str, env: Mapping[str, str]) -> str:
    """Which login ``auto`` means for this registry: ecr, ghcr, gitlab or none."""
    host = registry_host(registry)
    if _ECR.match(host):
        return "ecr"
    if host == "ghcr.io" and env.get("GITHUB_TOKEN"):
        return "ghcr"
    if env.get("CI_REGISTRY") and registry_host(env["CI_REGISTRY"]) == host:
        return "gitlab"
    return "none"


def credentials(mode: str, registry: str, env: Mapping[str, str]) -> Credentials | None:
    """The credentials ``mode`` (auto, ecr, ghcr, gitlab, none) gives for ``registry``."""
    kind = detect(registry, env) if mode == "auto" else mode
    host = registry_host(registry)
    if kind == "ecr":
        return _ecr(host, env)
    if kind == "ghcr":
        token = env.get("GITHUB_TOKEN", "")
        if not token:
            raise UsageError(
                f"image.login is ghcr but GITHUB_TOKEN is not set, so there is nothing to log in to {host} with",
                where=LOGIN_WHERE,
                fix="give the step `env: {GITHUB_TOKEN: ${{ github.token }}}` and the job "
                "`permissions: {packages: write}`, or set `login: none` if an earlier step logged in",
            )
        return Credentials(host, env.get("GITHUB_ACTOR") or "github-actions", token, "GITHUB_TOKEN")
    if kind == "gitlab":
        user, password = env.get("CI_REGISTRY_USER", ""), env.get("CI_REGISTRY_PASSWORD", "")
        source = "CI_REGISTRY_USER/CI_REGISTRY_PASSWORD"
        if not password and env.get("CI_JOB_TOKEN"):
            user, password, source = "gitlab-ci-token", env["CI_JOB_TOKEN"], "CI_JOB_TOKEN"
        if not password:
            raise UsageError(
                f"image.login is gitlab but neither CI_REGISTRY_PASSWORD nor CI_JOB_TOKEN is set for {host}",
                where=LOGIN_WHERE,
                fix="run the job in GitLab CI with the project's container registry enabled (GitLab sets "
                "both), or set `login: none` if the job logs in itself",
            )
        return Credentials(host, user or "gitlab-ci-token", password, source)
    if kind == "none":
        return None
    raise UsageError(f"unknown login {kind!r}", where=LOGIN_WHERE, fix="use one of: auto, ecr, ghcr, gitlab, none")


def _ecr(host: str, env: Mapping[str, str]) -> Credentials:
    m = _ECR.match(host)
    region = m["region"] if m else (env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "")
    if not region:
        raise UsageError(f"cannot tell the AWS region of registry {host}", where=LOGIN_WHERE,
                         fix="push to <account>.dkr.ecr.<region>.amazonaws.com, or set AWS_REGION")
    try:
        import boto3
        import botocore.exceptions
    except ImportError:
        raise UsageError("logging in to ECR needs boto3, which is not installed", where=LOGIN_WHERE,
                         fix="pip install 'ml-cicd[aws]' (or boto3)") from None
    from mlcicd.aws import web_identity_from_ci

    web_identity_from_ci()  # GitLab: the job's id_tokens JWT, for boto3's chain (it reads os.environ)
    client = boto3.session.Session().client("ecr", region_name=region)
    kwargs = {"registryIds": [m["account"]]} if m else {}
    try:
        data = client.get_authorization_token(**kwargs)["authorizationData"][0]
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        raise UsageError(
            f"ECR GetAuthorizationToken failed in {region}: {exc}",
            where=LOGIN_WHERE,
            fix="give the job AWS credentials allowed ecr:GetAuthorizationToken (on GitHub: "
            "aws-actions/configure-aws-credentials with role-to-assume; on GitLab: id_tokens + AWS_ROLE_ARN "
            "and AWS_WEB_IDENTITY_TOKEN_FILE)",
        ) from None
    user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    return Credentials(host, user, password, f"ECR GetAuthorizationToken ({region})")


def _user_auth_file(env: Mapping[str, str]) -> Path | None:
    """The auth file the builder would read without us (containers' order, then Docker's)."""
    home = Path(env.get("HOME") or Path.home())
    candidates = [env.get("REGISTRY_AUTH_FILE", "")]
    if env.get("XDG_RUNTIME_DIR"):
        candidates.append(f"{env['XDG_RUNTIME_DIR']}/containers/auth.json")
    candidates += [str(home / ".config/containers/auth.json"), str(home / ".docker/config.json")]
    return next((Path(c) for c in candidates if c and Path(c).is_file()), None)


@contextlib.contextmanager
def logged_in(creds: Credentials | None, builder: str, *, tls_verify: bool,
              env: Mapping[str, str]) -> Iterator[dict[str, str]]:
    """Environment additions that make ``builder`` use a temporary, logged-in auth file.

    Yields ``{}`` without credentials: the builder then uses the user's own login, if any.
    """
    if creds is None:
        yield {}
        return
    private = Path(tempfile.mkdtemp(prefix="mlci-registry-auth-"))  # 0700: only this user
    try:
        if builder == "docker":
            extra = _docker_config(private, env)
            argv = ["docker", "login", "--username", creds.username, "--password-stdin", creds.registry]
        else:
            auth = private / "auth.json"
            seed = _user_auth_file(env)
            auths = {}
            if seed is not None:
                with contextlib.suppress(OSError, ValueError, AttributeError):
                    auths = dict(json.loads(seed.read_text()).get("auths", {}))
            auth.write_text(json.dumps({"auths": auths}))
            auth.chmod(0o600)
            extra = {"REGISTRY_AUTH_FILE": str(auth)}
            argv = [builder, "login", "--authfile", str(auth), f"--tls-verify={str(tls_verify).lower()}",
                    "--username", creds.username, "--password-stdin", creds.registry]
        try:
            out = subprocess.run(argv, input=creds.password, env={**env, **extra}, capture_output=True,
                                 text=True, timeout=LOGIN_TIMEOUT, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise UsageError(f"{builder} login to {creds.registry} could not run: {exc}", where=LOGIN_WHERE,
                             fix="check that the registry host is reachable from the runner") from None
        if out.returncode != 0:
            why = (out.stderr or out.stdout).strip().splitlines()[-1:] or ["no output"]
            raise UsageError(
                f"{builder} login to {creds.registry} with {creds.source} was refused: {why[0]}",
                where=LOGIN_WHERE,
                fix="check that these credentials may push to this registry (ECR: ecr:GetAuthorizationToken "
                "and the repository's push actions; GHCR: permissions: packages: write; GitLab: the project's "
                "registry), or set `login: none` and log in before the stage",
            )
        yield extra
    finally:
        shutil.rmtree(private, ignore_errors=True)


def _docker_config(private: Path, env: Mapping[str, str]) -> dict[str, str]:
    """A DOCKER_CONFIG that keeps the user's buildx builders and CLI plugins, with our own logins."""
    user = Path(env.get("DOCKER_CONFIG") or Path(env.get("HOME") or Path.home()) / ".docker")
    for name in ("buildx", "cli-plugins", "contexts"):
        if (user / name).exists():
            os.symlink(user / name, private / name)
    (private / "config.json").write_text(json.dumps({"auths": {}}))
    (private / "config.json").chmod(0o600)
    return {"DOCKER_CONFIG": str(private)}
