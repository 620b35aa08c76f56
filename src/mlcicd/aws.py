"""boto3 clients and AWS errors that teach.

Credentials come from boto3's standard chain, never from stage inputs: on GitHub Actions
``aws-actions/configure-aws-credentials`` (OIDC) exports them; on GitLab CI the job's
``id_tokens`` JWT (variable ``AWS_ID_TOKEN``) is written to a private file named by
``AWS_WEB_IDENTITY_TOKEN_FILE``, and with ``AWS_ROLE_ARN`` boto3 assumes the role itself
(``AssumeRoleWithWebIdentity``), refreshing before the session expires.
``AWS_ENDPOINT_URL`` (and the per-service ``AWS_ENDPOINT_URL_<SERVICE>``) are honoured
by boto3, which is how the tests point everything at moto's server.

boto3 is imported lazily: only stages that talk to AWS pay for it (``pip install 'ml-cicd[aws]'``).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, MutableMapping
from typing import Any

from mlcicd.errors import MlciError, ToolMissingError, UsageError

# Errors whose cause is the caller's permissions or configuration, not AWS being down.
_DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnrecognizedClientException",
           "InvalidClientTokenId", "ExpiredToken", "ExpiredTokenException", "AuthFailure"}
_THROTTLED = {"Throttling", "ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded"}

OIDC_FIX = ("give the job AWS credentials without stored keys: on GitHub Actions grant `id-token: write` and run "
            "aws-actions/configure-aws-credentials with `role-to-assume: ${{ vars.AWS_ROLE_ARN }}` before this step; "
            "on GitLab CI add `id_tokens: {AWS_ID_TOKEN: {aud: sts.amazonaws.com}}` and set AWS_ROLE_ARN (see the "
            "README's OIDC section)")
# The variable GitLab's `id_tokens:` puts the job's OIDC token in (rendered pipelines use this name).
ID_TOKEN_ENV = "AWS_ID_TOKEN"


def web_identity_from_ci(env: MutableMapping[str, str] | None = None) -> str | None:
    """Write a CI job's OIDC token (``AWS_ID_TOKEN``) to a private file for boto3's web-identity chain.

    boto3 reads a web-identity token only from a file, while GitLab hands it over in a variable.
    Does nothing when there is no token or role, or when the file is already set; returns the
    file written (also set as ``AWS_WEB_IDENTITY_TOKEN_FILE`` in ``env``, default os.environ).
    """
    if env is None:
        env = os.environ
    token = env.get(ID_TOKEN_ENV, "").strip()
    if not token or not env.get("AWS_ROLE_ARN") or env.get("AWS_WEB_IDENTITY_TOKEN_FILE"):
        return None
    fd, path = tempfile.mkstemp(prefix="mlci-oidc-", suffix=".jwt")  # mode 0600
    with os.fdopen(fd, "w") as fh:
        fh.write(token)
    env["AWS_WEB_IDENTITY_TOKEN_FILE"] = path
    # CloudTrail shows which job acted.
    env.setdefault("AWS_ROLE_SESSION_NAME", f"mlci-{env.get('CI_JOB_ID') or env.get('GITHUB_RUN_ID') or 'job'}")
    return path


class AwsUnavailable(MlciError):
    """AWS could not be reached or kept throttling; re-running the stage is safe."""


def client(service: str, region: str | None = None, *, attempts: int = 6, read_timeout: float = 30.0,
           region_key: str = "deploy.ecs.region") -> Any:
    """A boto3 client with retries suited to CI jobs (adaptive, a few attempts, short timeouts)."""
    try:
        import boto3
        from botocore.config import Config as BotoConfig
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ToolMissingError("boto3 is not installed", where=f"AWS service {service}",
                               fix="pip install 'ml-cicd[aws]'") from exc
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not region:
        raise UsageError("no AWS region given", where=f"mlci.yaml: {region_key}",
                         fix="set `region: eu-west-1` (or the AWS_REGION environment variable)")
    web_identity_from_ci()
    cfg = BotoConfig(retries={"max_attempts": attempts, "mode": "adaptive"}, connect_timeout=5,
                     read_timeout=read_timeout)
    return boto3.client(service, region_name=region, config=cfg)


def error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def denied(exc: BaseException) -> bool:
    """AWS refused the call for the caller's permissions or credentials (not an outage)."""
    code = error_code(exc)
    return code in _DENIED or code.startswith(("AccessDenied", "Unauthorized"))


@contextlib.contextmanager
def translated(action: str, where: str) -> Iterator[None]:
    """Turn botocore's errors into ones that say what failed and how to fix it.

    ``action`` is the IAM action (``ecs:UpdateService``), named in the fix so a missing
    permission is one policy line away; ``where`` is the config key or resource concerned.
    """
    try:
        from botocore.exceptions import (
            ClientError,
            EndpointConnectionError,
            NoCredentialsError,
            NoRegionError,
            PartialCredentialsError,
        )
    except ImportError:  # pragma: no cover - boto3 missing is reported by client()
        yield
        return
    try:
        yield
    except (NoCredentialsError, PartialCredentialsError) as exc:
        raise UsageError(f"no AWS credentials for {action}: {exc}", where=where, fix=OIDC_FIX) from exc
    except NoRegionError as exc:
        raise UsageError("no AWS region given", where=where, fix="set deploy.ecs.region or AWS_REGION") from exc
    except EndpointConnectionError as exc:
        raise AwsUnavailable(f"{action}: AWS is unreachable ({exc}); re-run the stage once it is back") from exc
    except ClientError as exc:
        code = error_code(exc)
        message = exc.response.get("Error", {}).get("Message", str(exc))
        if denied(exc):
            raise UsageError(f"AWS denied {action}: {message}", where=where,
                             fix=f"allow `{action}` for the job's role (the README lists the least-privilege "
                             "IAM policy), or check that the job assumed the role you expect") from exc
        if code in _THROTTLED:
            raise AwsUnavailable(f"{action}: AWS kept throttling ({message}); re-running the stage is safe") from exc
        raise


def arn_suffix(arn: str, marker: str) -> str:
    """CloudWatch's dimension value for an ELB resource: the ARN from ``marker`` on.

    ``...:loadbalancer/app/my-alb/50dc6c495c0c9188`` -> ``app/my-alb/50dc6c495c0c9188`` (marker
    ``loadbalancer/``); ``...:targetgroup/tg/73e2d6bc24d8a067`` -> ``targetgroup/tg/73e2d6bc24d8a067``.
    """
    _, sep, tail = arn.partition(marker)
    if not sep:
        raise ValueError(f"{arn!r} has no {marker!r}")
    return tail if marker.endswith("loadbalancer/") else marker + tail
