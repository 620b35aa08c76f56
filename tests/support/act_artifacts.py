"""Offline stand-ins for actions/upload-artifact and actions/download-artifact (v4) under act.

There is no network here, so act cannot fetch the real actions. ``stand_ins(dir)`` writes two
small composite actions that do what the real ones do, against act's own artifact server
(``--artifact-server-path``): the v4 protocol the real actions speak, Twirp RPCs with JSON
bodies at ``$ACTIONS_RESULTS_URL/twirp/github.actions.results.api.v1.ArtifactService/*``,
authorised by the job's ``$ACTIONS_RUNTIME_TOKEN`` (a JWT whose ``scp`` claim names the run
and job: ``Actions.Results:<run>:<job>``). Upload zips the paths (one a line, under their least
common ancestor, as the real action stores them), creates the artifact, PUTs
the zip to the signed URL and finalizes it; download lists the run's artifacts, asks for a
signed URL of each match and unzips it. The outputs are the real ones (``artifact-id``,
``artifact-url``, ``artifact-digest``; ``download-path``).

Run as a script (stdlib only, the host's python3) it is the client the stand-ins call:
``python3 act_artifacts.py upload|download`` with the inputs as ``INPUT_<NAME>`` variables.
"""

from __future__ import annotations

import base64
import fnmatch
import glob
import hashlib
import io
import json
import os
import shutil
import sys
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

SERVICE = "twirp/github.actions.results.api.v1.ArtifactService"

def _action(name: str, inputs: dict[str, str], outputs: tuple[str, ...], mode: str) -> str:
    """A composite action running this file as ``mode`` with its inputs as INPUT_<NAME> variables."""
    return "\n".join([
        f"name: {name} (offline stand-in for the e2e tests, v4 protocol against act artifact server)",
        "inputs:", *(f"  {k}: {{required: false, default: {json.dumps(v)}}}" for k, v in inputs.items()),
        "outputs:", *(f'  {o}: {{value: "${{{{ steps.run.outputs.{o} }}}}"}}' for o in outputs),
        "runs:", "  using: composite", "  steps:", "    - id: run", "      shell: bash", "      env:",
        *(f"        INPUT_{k.upper().replace('-', '_')}: ${{{{ inputs.{k} }}}}" for k in inputs),
        f'      run: python3 "$GITHUB_ACTION_PATH/act_artifacts.py" {mode}', ""])


# overwrite: act's CreateArtifact starts the artifact afresh anyway.
UPLOAD_ACTION = _action("upload-artifact", {"name": "artifact", "path": "", "if-no-files-found": "warn",
                                            "overwrite": "false"},
                        ("artifact-id", "artifact-url", "artifact-digest"), "upload")
DOWNLOAD_ACTION = _action("download-artifact", {"name": "", "pattern": "", "path": ".", "merge-multiple": "false"},
                          ("download-path",), "download")


def stand_ins(root: Path, upload: str, download: str) -> list[str]:
    """Write both stand-ins under ``root``; the act arguments that map ``upload``/``download``
    (``actions/upload-artifact@<sha>``...) to them."""
    args = []
    for uses, name, text in ((upload, "upload-artifact", UPLOAD_ACTION), (download, "download-artifact",
                                                                          DOWNLOAD_ACTION)):
        action = root / name
        action.mkdir(parents=True, exist_ok=True)
        (action / "action.yml").write_text(text)
        shutil.copy(__file__, action / "act_artifacts.py")
        args += ["--local-repository", f"{uses}={action}"]
    return args


def stored(server_dir: Path) -> dict[str, Path]:
    """Artifact name -> its zip in act's store (``<dir>/<run id>/<name>/<name>.zip``)."""
    return {p.parent.name: p for p in server_dir.glob("*/*/*.zip")}


# --- the client the stand-ins run ------------------------------------------------------------------

def _backend_ids() -> dict[str, str]:
    token = os.environ["ACTIONS_RUNTIME_TOKEN"]
    claims_b64 = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(claims_b64 + "=" * (-len(claims_b64) % 4)))
    for scope in str(claims.get("scp", "")).split():
        parts = scope.split(":")
        if parts[0] == "Actions.Results" and len(parts) == 3:
            return {"workflow_run_backend_id": parts[1], "workflow_job_run_backend_id": parts[2]}
    raise SystemExit(f"::error::no Actions.Results scope in the runtime token: {claims}")


def _rpc(method: str, body: dict[str, Any]) -> dict[str, Any]:
    url = os.environ["ACTIONS_RESULTS_URL"].rstrip("/") + f"/{SERVICE}/{method}"
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {os.environ['ACTIONS_RUNTIME_TOKEN']}"})
    with urllib.request.urlopen(request, timeout=60) as answer:
        result: dict[str, Any] = json.load(answer)
    return result


def _output(**values: str) -> None:
    with open(os.environ["GITHUB_OUTPUT"], "a", encoding="utf-8") as fh:
        fh.writelines(f"{k}={v}\n" for k, v in values.items())


def _search(paths: str) -> tuple[Path, list[Path]]:
    """The files of ``paths`` (one a line, globs allowed) and the root they are stored under.

    As the real action does: the root is the least common ancestor of the search paths (a
    directory's own path, a file's parent), so one directory uploads its contents, and files of
    one directory upload without it."""
    found: list[Path] = []
    for line in filter(None, (raw.strip() for raw in paths.splitlines())):
        found += [Path(p) for p in sorted(glob.glob(line, recursive=True))] if glob.has_magic(line) else [Path(line)]
    found = [p for p in found if p.exists()]
    if not found:
        return Path("."), []
    root = Path(os.path.commonpath([str((p if p.is_dir() else p.parent).resolve()) for p in found]))
    files = {f.resolve() for p in found for f in ([q for q in p.rglob("*") if q.is_file()] if p.is_dir() else [p])}
    return root, sorted(files)


def _zip(root: Path, files: list[Path]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in files:
            archive.write(file, file.relative_to(root))
    return buffer.getvalue()


def upload() -> int:
    name, paths = os.environ["INPUT_NAME"], os.environ["INPUT_PATH"]
    root, files = _search(paths)
    if not files:
        mode = os.environ.get("INPUT_IF_NO_FILES_FOUND") or "warn"
        print(f"{'::error::' if mode == 'error' else '::warning::' if mode == 'warn' else ''}"
              f"No files were found with the provided path: {paths.strip()}. No artifacts will be uploaded.")
        return 1 if mode == "error" else 0
    ids = _backend_ids()
    created = _rpc("CreateArtifact", {**ids, "name": name, "version": 4})
    content = _zip(root, files)
    put = urllib.request.Request(created["signedUploadUrl"] + "&comp=block", data=content, method="PUT",
                                 headers={"Content-Type": "application/octet-stream"})
    urllib.request.urlopen(put, timeout=60).close()
    digest = hashlib.sha256(content).hexdigest()
    done = _rpc("FinalizeArtifact", {**ids, "name": name, "size": str(len(content)), "hash": f"sha256:{digest}"})
    artifact_id = str(done["artifactId"])
    env = os.environ
    url = f"{env['GITHUB_SERVER_URL']}/{env['GITHUB_REPOSITORY']}/actions/runs/{env['GITHUB_RUN_ID']}/artifacts/" \
          f"{artifact_id}"
    print(f"Artifact {name} uploaded ({len(content)} bytes): {url}")
    _output(**{"artifact-id": artifact_id, "artifact-url": url, "artifact-digest": digest})
    return 0


def download() -> int:
    ids = _backend_ids()
    name, pattern = os.environ.get("INPUT_NAME", ""), os.environ.get("INPUT_PATTERN", "")
    target = Path(os.environ.get("INPUT_PATH") or ".")
    merge = os.environ.get("INPUT_MERGE_MULTIPLE") == "true"
    listed = [a["name"] for a in _rpc("ListArtifacts", ids).get("artifacts", [])]
    chosen = [n for n in listed if (n == name if name else fnmatch.fnmatch(n, pattern or "*"))]
    if name and not chosen:
        print(f"::error::Unable to download artifact(s): Artifact not found for name: {name}")
        return 1
    for artifact in chosen:
        signed = _rpc("GetSignedArtifactURL", {**ids, "name": artifact})["signedUrl"]
        with urllib.request.urlopen(signed, timeout=60) as answer:
            content = answer.read()
        into = target if (merge or name) else target / artifact
        into.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            archive.extractall(into)
        print(f"Artifact {artifact} downloaded to {into}")
    print(f"{len(chosen)} artifact(s) downloaded")
    _output(**{"download-path": str(target.resolve())})
    return 0


if __name__ == "__main__":
    sys.exit({"upload": upload, "download": download}[sys.argv[1]]())
