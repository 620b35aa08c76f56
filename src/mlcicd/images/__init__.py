"""Model-server images: build context and Dockerfile rendering, builder plugins, push, digest.

``context`` turns a downloaded model into a build context whose bytes depend only on the
model, the base image and the install command (so ``--timestamp 0`` builds reproduce the
same digest); ``builders`` runs buildah, podman or docker buildx with argv lists, never a
shell. The ``build-image`` stage glues them to the registry.
"""

from __future__ import annotations

from mlcicd.images.builders import BUILDERS, BuildOutcome, BuildRequest, select_builder
from mlcicd.images.context import BuildContext, ImageSettings, oci_labels, render_dockerfile

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
