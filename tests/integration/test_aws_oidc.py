"""OIDC, never stored keys: a GitLab job's id_tokens JWT becomes an assumed-role session.

GitLab puts the token in a variable (``AWS_ID_TOKEN``); boto3's web-identity chain reads a
file. The stage writes the file and boto3 calls STS AssumeRoleWithWebIdentity, here against
moto's server (the stand-in for STS; it does not verify the token's signature).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from mlcicd.aws import web_identity_from_ci

pytestmark = pytest.mark.integration
ROLE = "arn:aws:iam::123456789012:role/mlci-deploy"
# A JWT's shape (header.payload.signature); moto reads the claims, AWS would verify the signature.
TOKEN = ".".join(part.rstrip("=") for part in (
    "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9",
    "eyJzdWIiOiJwcm9qZWN0X3BhdGg6Z3JvdXAvbWw6cmVmX3R5cGU6YnJhbmNoOnJlZjptYWluIiwiYXVkIjoic3RzLmFtYXpvbmF3cy5jb20ifQ",
    "c2lnbmF0dXJl"))


def test_the_token_file_is_private_and_an_existing_one_is_kept(tmp_path):
    env = {"AWS_ID_TOKEN": TOKEN, "AWS_ROLE_ARN": ROLE, "CI_JOB_ID": "42"}
    path = web_identity_from_ci(env)
    assert path is not None and env["AWS_WEB_IDENTITY_TOKEN_FILE"] == path
    try:
        assert Path(path).read_text() == TOKEN
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert env["AWS_ROLE_SESSION_NAME"] == "mlci-42"
        assert web_identity_from_ci(env) is None  # already set: nothing written twice
    finally:
        os.unlink(path)
    assert web_identity_from_ci({"AWS_ID_TOKEN": TOKEN}) is None  # no role to assume


def test_a_job_with_only_an_id_token_and_a_role_gets_an_assumed_role_session(moto):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"AWS_ENDPOINT_URL": moto.url, "AWS_REGION": "eu-west-1", "AWS_EC2_METADATA_DISABLED": "true",
                "AWS_ID_TOKEN": TOKEN, "AWS_ROLE_ARN": ROLE, "CI_JOB_ID": "7",
                # No keys anywhere: not in the environment, not in a shared credentials file.
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "AWS_CONFIG_FILE": os.devnull})
    code = ("import json; from mlcicd import aws; "
            "print(json.dumps(aws.client('sts').get_caller_identity()))")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    identity = json.loads(proc.stdout)
    assert ":assumed-role/mlci-deploy/mlci-7" in identity["Arn"], identity
