"""The MLflow model registry, driven through aliases.

``challenger`` (passed the gate), ``canary`` (serving a share of traffic),
``champion`` (serving all traffic) and ``previous-champion`` (what to restore).
Evidence from the stages is written as version tags (``mlci.*``). MLflow is
imported only when a method is called.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcicd.config import store_uri
from mlcicd.errors import MlciError, UsageError

if TYPE_CHECKING:
    from mlcicd.config import Config

CHAMPION = "champion"
CHALLENGER = "challenger"
CANARY = "canary"
PREVIOUS_CHAMPION = "previous-champion"


class RegistryUnavailable(MlciError):
    """The tracking/registry server could not be reached; re-run once it is back."""


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: str
    run_id: str | None
    source: str
    tags: dict[str, str]

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def run_of(model_uri: str) -> str | None:
    """The run id of a ``runs:/<id>/...`` URI."""
    if model_uri.startswith("runs:/"):
        return model_uri[len("runs:/"):].split("/", 1)[0] or None
    return None


class Registry:
    def __init__(self, tracking_uri: str, model_name: str, registry_uri: str | None = None) -> None:
        self.tracking_uri = tracking_uri
        self.registry_uri = registry_uri or tracking_uri
        self.model_name = model_name
        self._client: Any = None

    @classmethod
    def from_config(cls, cfg: Config, *, tracking_uri: str | None = None, model_name: str | None = None) -> Registry:
        """The registry of a project: ``mlflow.*`` of its config (inputs already applied), with
        relative SQLite paths anchored at the project root. ``tracking_uri``/``model_name``
        replace the config's."""
        tracking = store_uri(tracking_uri or cfg.mlflow.tracking_uri, cfg.root)
        registry = store_uri(cfg.mlflow.registry_uri, cfg.root) if cfg.mlflow.registry_uri else None
        return cls(tracking, model_name or cfg.mlflow.model_name, registry)

    def for_model(self, model_name: str) -> Registry:
        """The same stores, another registered model."""
        return self if model_name == self.model_name else Registry(self.tracking_uri, model_name, self.registry_uri)

    @property
    def client(self) -> Any:
        if self._client is None:
            from mlflow.tracking import MlflowClient

            self._client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.registry_uri)
        return self._client

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        import requests
        from mlflow.exceptions import MlflowException

        try:
            return fn(*args, **kwargs)
        except requests.exceptions.ConnectionError as exc:
            raise RegistryUnavailable(f"MLflow registry at {self.registry_uri} is unreachable: {exc}") from exc
        except MlflowException as exc:
            if "API request" in str(exc) and ("failed" in str(exc) or "Max retries" in str(exc)):
                raise RegistryUnavailable(
                    f"MLflow registry at {self.registry_uri} is unreachable: {exc}"
                ) from exc
            raise

    @staticmethod
    def _wrap(mv: Any) -> ModelVersion:
        return ModelVersion(mv.name, str(mv.version), mv.run_id, mv.source, dict(mv.tags or {}))

    def ensure_model(self) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self._call(self.client.get_registered_model, self.model_name)
        except MlflowException:
            self._call(self.client.create_registered_model, self.model_name)

    def register(self, model_uri: str, run_id: str | None, tags: dict[str, str]) -> ModelVersion:
        """Create a new version from a logged model (``runs:/<id>/<name>`` or a models URI).

        MLflow 3 keeps logged models outside the run's artifacts, so a ``runs:/`` source
        would point at an empty directory: register the run's LoggedModel instead, as
        ``mlflow.register_model`` does.
        """
        self.ensure_model()
        source, model_id = model_uri, None
        if model_uri.startswith("runs:/") and run_id:
            parts = model_uri[len("runs:/"):].split("/", 1)
            name = parts[1] if len(parts) == 2 else "model"
            run = self._call(self.client.get_run, run_id)
            found = self._call(
                self.client.search_logged_models,
                experiment_ids=[run.info.experiment_id],
                filter_string=f"source_run_id = '{run_id}' AND name = '{name}'",
                max_results=1,
                order_by=[{"field_name": "creation_time", "ascending": False}],
            )
            if found:
                model_id = found[0].model_id
                source = f"models:/{model_id}"
        with self.pinned_uris():
            mv = self._call(
                self.client.create_model_version,
                name=self.model_name,
                source=source,
                run_id=run_id,
                tags={k: str(v) for k, v in tags.items()},
                model_id=model_id,
            )
        return self._wrap(mv)

    def by_alias(self, alias: str) -> ModelVersion | None:
        from mlflow.exceptions import MlflowException

        try:
            return self._wrap(self._call(self.client.get_model_version_by_alias, self.model_name, alias))
        except MlflowException as exc:
            if "not found" in str(exc).lower() or "RESOURCE_DOES_NOT_EXIST" in str(exc):
                return None
            raise

    def version(self, version: str) -> ModelVersion:
        return self._wrap(self._call(self.client.get_model_version, self.model_name, str(version)))

    def set_alias(self, alias: str, version: str) -> None:
        self._call(self.client.set_registered_model_alias, self.model_name, alias, str(version))

    def delete_alias(self, alias: str) -> None:
        """Idempotent: removing an alias that is not set is not an error."""
        if self.by_alias(alias) is not None:
            self._call(self.client.delete_registered_model_alias, self.model_name, alias)

    def aliases(self) -> dict[str, str]:
        from mlflow.exceptions import MlflowException

        try:
            model = self._call(self.client.get_registered_model, self.model_name)
        except MlflowException:
            return {}
        return {alias: str(v) for alias, v in (model.aliases or {}).items()}

    def set_tags(self, version: str, tags: dict[str, Any]) -> None:
        for key, value in tags.items():
            self._call(self.client.set_model_version_tag, self.model_name, str(version), key, str(value))

    def resolve(self, model_uri: str) -> ModelVersion:
        """``models:/name@alias`` or ``models:/name/3`` -> the version it names."""
        prefix = f"models:/{self.model_name}"
        if model_uri.startswith(prefix + "@"):
            alias = model_uri[len(prefix) + 1 :]
            mv = self.by_alias(alias)
            if mv is None:
                raise UsageError(
                    f"no version of model {self.model_name!r} has alias {alias!r}",
                    where=f"model-uri {model_uri}",
                    fix="run the gate stage first (it sets alias challenger), or pass models:/<name>/<version>",
                )
            return mv
        if model_uri.startswith(prefix + "/"):
            return self.version(model_uri[len(prefix) + 1 :])
        raise UsageError(
            f"expected a registered model URI of {self.model_name!r}",
            where=f"model-uri {model_uri}",
            fix=f"pass models:/{self.model_name}@challenger or models:/{self.model_name}/<version>",
        )

    def register_challenger(self, model_uri: str, tags: dict[str, str], *, uri_tag: str) -> ModelVersion:
        """Register (or re-use) the version, tag it with the evidence and point ``challenger`` at it.

        Re-running the gate after a crash must not leave duplicate versions: a registered
        ``models:/`` URI is the version itself, and a ``runs:/`` URI reuses a version of that run
        whose ``uri_tag`` tag holds the same model URI.
        """
        prefix = f"models:/{self.model_name}"
        run_id = run_of(model_uri)
        existing: ModelVersion | None = None
        if model_uri.startswith((prefix + "/", prefix + "@")):
            existing = self.resolve(model_uri)
        elif run_id is not None:
            existing = self._version_of_run(run_id, model_uri, uri_tag)
        if existing is None:
            mv = self.register(model_uri, run_id, tags)
        else:
            self.set_tags(existing.version, tags)
            mv = self.version(existing.version)
        self.set_alias(CHALLENGER, mv.version)
        return mv

    def _version_of_run(self, run_id: str, model_uri: str, uri_tag: str) -> ModelVersion | None:
        from mlflow.exceptions import MlflowException

        try:
            found = self._call(self.client.search_model_versions,
                               f"name='{self.model_name}' and run_id='{run_id}'")
        except MlflowException:
            return None  # no such registered model yet
        for mv in found:
            if (mv.tags or {}).get(uri_tag) == model_uri:
                return self.version(str(mv.version))
        return None

    def download(self, version: str, dst: Path) -> Path:
        """Copy the version's model files under ``dst``; return the directory holding MLmodel."""
        import mlflow.artifacts

        dst.mkdir(parents=True, exist_ok=True)
        with self.pinned_uris():
            path = Path(
                self._call(
                    mlflow.artifacts.download_artifacts,
                    artifact_uri=f"models:/{self.model_name}/{version}",
                    dst_path=str(dst),
                    tracking_uri=self.tracking_uri,
                    registry_uri=self.registry_uri,
                )
            )
        found = sorted(p.parent for p in path.rglob("MLmodel"))
        return found[0] if found else path

    @contextlib.contextmanager
    def pinned_uris(self) -> Iterator[None]:
        """Point MLflow's process-wide URIs at this registry for one call.

        MLflow 3 resolves ``models:/`` URIs and LoggedModel sources through the global
        tracking/registry URIs, ignoring the client's own (with nothing set it would read,
        and create, ./mlflow.db). Restore the globals and the environment variables
        ``set_tracking_uri`` writes as a side effect afterwards.
        """
        import mlflow
        from mlflow.tracking._model_registry import utils as registry_utils
        from mlflow.tracking._tracking_service import utils as tracking_utils

        env = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
        # The raw module state, not get_tracking_uri(): restoring a resolved default would
        # pin it, where before it was unset and followed the environment.
        # Any: None is a valid value to restore (it unsets the URI) though the setters are typed str.
        saved: tuple[Any, Any] = (getattr(tracking_utils, "_tracking_uri", None),
                                  getattr(registry_utils, "_registry_uri", None))
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.registry_uri)
        try:
            yield
        finally:
            mlflow.set_tracking_uri(saved[0])
            mlflow.set_registry_uri(saved[1])
            for key, value in env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
