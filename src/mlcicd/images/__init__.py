"""Model-server images: build context and Dockerfile rendering, builder plugins, push, digest.

``context`` turns a downloaded model into a build context whose bytes depend only on the
model, the wheels and the settings (so ``--timestamp 0`` builds reproduce the same digest);
``wheels`` resolves the image's Python packages on the builder; ``dockerfile`` renders the
Dockerfile; ``builders`` runs buildah, podman or docker buildx with argv lists, never a
shell; ``login`` logs in to ECR, GHCR or the GitLab registry; ``base`` makes a Debian
Python base image where none can be pulled. The ``build-image`` stage glues them together.
"""

from __future__ import annotations

from mlcicd.images.builders import BUILDERS, BuildOutcome, BuildRequest, select_builder
from mlcicd.images.context import BuildContext, ImageSettings, oci_labels
from mlcicd.images.dockerfile import render_dockerfile

__all__ = [
    "BUILDERS",
    "BuildContext",
    "BuildOutcome",
    "BuildRequest",
    "ImageSettings",
    "oci_labels",
    "render_dockerfile",
    "select_builder",
]
