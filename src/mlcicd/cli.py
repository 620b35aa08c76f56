"""Console entry points ``mlci`` and ``mlci-gen``.

``mlci run <stage>`` gets one option per catalogue input, so the CLI can never
drift from the actions and components rendered from the same catalogue.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from mlcicd.catalog import STAGES, Stage, all_inputs
from mlcicd.version import build_info


def _stage_command(stage: Stage) -> click.Command:
    params: list[click.Parameter] = [
        click.Option(["--ci"], type=click.Choice(["github", "gitlab", "local"]),
                     help="CI system (default: detected from the environment).")
    ]
    for item in all_inputs(stage):
        params.append(
            click.Option(
                [f"--{item.name}", item.name.replace("-", "_")],
                default=None,
                show_envvar=True,
                help=f"{item.description} [env: {item.env_var}]"
                + (f" [options: {', '.join(item.options)}]" if item.options else ""),
            )
        )

    def callback(ci: str | None, **kwargs: Any) -> None:
        from mlcicd.ci import detect
        from mlcicd.errors import UsageError
        from mlcicd.runner import execute

        values = {k.replace("_", "-"): v for k, v in kwargs.items() if v is not None}
        try:
            adapter = detect(override=ci) if ci else None
        except UsageError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)
        code, result = execute(stage.id, values, ci=adapter)
        if result is not None and result.figures.get("cancelled"):
            # Cancelled by CI and the report is written: finalising an interpreter that loaded MLflow
            # takes seconds the runner's grace period may not leave (SIGKILL follows), so end now.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        sys.exit(code)

    return click.Command(stage.id, params=params, callback=callback, help=stage.summary)


@click.group()
@click.version_option(build_info().describe(), package_name="ml-cicd")
def mlci() -> None:
    """ml-cicd: the stages of an ML delivery pipeline, the same on a laptop and in CI."""


@mlci.group()
def run() -> None:
    """Run one pipeline stage (exit 0 pass, 1 fail, 2 usage error, 3 inconclusive, 4 bug)."""


for _stage in STAGES:
    run.add_command(_stage_command(_stage))


@mlci.command()
@click.option("--bad-canary", is_flag=True, help="Ship a deliberately bad challenger to show the rollback path.")
@click.option("--keep-running/--stop", default=True, show_default=True,
              help="Leave the champion serving behind nginx after the demo (what a deploy does; "
              "`mlci down` stops it), or stop everything at the end.")
@click.option("--workdir", default=".mlci-demo", show_default=True, type=click.Path(file_okay=False),
              help="Where the demo copies the example project and keeps its state.")
@click.option("--canary-duration", default=120.0, show_default=True, help="Maximum canary bake time in seconds.")
@click.option("--port", default=8080, show_default=True, help="Port of the demo's nginx on 127.0.0.1.")
@click.option("--build-image", is_flag=True,
              help="Also build the model-server image (needs buildah/podman/buildx and the base image).")
def demo(bad_canary: bool, keep_running: bool, workdir: str, canary_duration: float, port: int,
         build_image: bool) -> None:
    """Run the whole pipeline on the bundled example project."""
    from mlcicd.demo import run_demo

    sys.exit(run_demo(workdir, bad_canary=bad_canary, keep_running=keep_running,
                      canary_duration=canary_duration, port=port, build_image=build_image))


@mlci.command()
@click.option("--config", default="mlci.yaml", show_default=True)
def status(config: str) -> None:
    """Show what the deploy target is serving, where the registry aliases point, and the installed
    plugins (deploy targets, metric sources) with their settings."""
    from mlcicd.operations import print_status

    sys.exit(print_status(config))


@mlci.command()
@click.option("--config", default="mlci.yaml", show_default=True)
def down(config: str) -> None:
    """Stop everything the local target started (nginx and model servers)."""
    from mlcicd.operations import stop_target

    sys.exit(stop_target(config))


# The options of `mlci report` and `mlci comment` read the MLCI_<INPUT> variables their actions and
# the report component set (catalog.TOOLS); an empty variable counts as not given.
@mlci.command()
@click.option("--dir", "dirs", multiple=True, default=["mlci-report"], show_default=True, envvar="MLCI_REPORT_DIR",
              show_envvar=True, type=click.Path(file_okay=False),
              help="A directory of stage reports (repeat for several).")
@click.option("--ci", type=click.Choice(["github", "gitlab"]), default=None,
              help="CI system (default: detected from the environment).")
@click.option("--key", default=None, envvar="MLCI_KEY", show_envvar=True,
              help="Names the pipeline: one comment per key per pull request "
              "[default: $MLCI_COMMENT_KEY, else the workflow's name on GitHub, `default` on GitLab].")
@click.option("--report-url", default=None, envvar="MLCI_REPORT_URL", show_envvar=True,
              help="Link to the full report [default: the run's artifacts].")
def comment(dirs: tuple[str, ...], ci: str | None, key: str | None, report_url: str | None) -> None:
    """Create or update this pipeline's comment on the pull / merge request with every stage's verdict.

    GitHub: GITHUB_TOKEN with `pull-requests: write`. GitLab: a project access token (scope api) in the
    masked variable MLCI_GITLAB_TOKEN (CI_JOB_TOKEN cannot post notes).
    """
    from mlcicd.comments.command import comment as post

    sys.exit(post(list(dirs), os.environ, ci=ci, key=key, report_url=report_url, echo=click.echo,
                  err=lambda t: click.echo(t, err=True)))


@mlci.command()
@click.option("--dir", "dirs", multiple=True, type=click.Path(path_type=Path), envvar="MLCI_REPORT_DIR",
              show_envvar=True,
              help="Report directory with the stages' <stage>.json; repeat it for several (e.g. one downloaded "
              "artifact per job; the latest file of a stage wins). [default: mlci-report]")
@click.option("--out", default=None, type=click.Path(dir_okay=False, path_type=Path), envvar="MLCI_OUTPUT",
              show_envvar=True, help="Where to write the HTML. [default: report.html in the first --dir]")
def report(dirs: tuple[Path, ...], out: Path | None) -> None:
    """Write one self-contained HTML report (plots included, no network needed to view it) of the stages'
    verdicts, and print its path (on GitHub also the step output `path`)."""
    from mlcicd.ci import detect
    from mlcicd.errors import UsageError
    from mlcicd.reporting import build

    dirs = dirs or (Path("mlci-report"),)
    try:
        path, _, _ = build(dirs, out or dirs[0] / "report.html")
        adapter = detect()
    except UsageError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    if adapter.name == "github":  # a later step uploads it: `${{ steps.<id>.outputs.path }}`
        adapter.set_outputs("report", {"path": str(path)}, dirs[0])
    click.echo(str(path))


@mlci.group()
def image() -> None:
    """Images: make a base image where none can be pulled."""


@image.command("base")
@click.option("--debian", "suite", default="bookworm", show_default=True,
              help="Debian release (bookworm: Python 3.11, trixie: Python 3.13).")
@click.option("--mirror", default=None, help="Debian mirror [default: http://deb.debian.org/debian].")
@click.option("--push", "registry", default=None,
              help="Push to this registry (host[:port][/namespace]) instead of loading into local storage.")
@click.option("--cache-dir", default=None, type=click.Path(file_okay=False),
              help="Where the image is cached [default: $MLCI_CACHE_DIR or ~/.cache/mlcicd].")
def image_base(suite: str, mirror: str | None, registry: str | None, cache_dir: str | None) -> None:
    """Make a Debian + Python base image from Debian's packages (debootstrap, as root) once, then reuse it.

    Prints the reference to put into mlci.yaml as image.base (and the matching image.python
    and image.platform).
    """
    from mlcicd.images.base_cli import make_base

    sys.exit(make_base(suite, mirror, registry, cache_dir))


@click.group()
@click.version_option(build_info().describe(), package_name="ml-cicd")
def mlci_gen() -> None:
    """Scaffold mlci.yaml and render CI pipelines."""


@mlci_gen.command()
@click.option("--dir", "directory", default=".", show_default=True, type=click.Path(file_okay=False))
@click.option("--force", is_flag=True, help="Overwrite existing files (mlci.yaml and the pipelines).")
@click.option("--label", default=None, help="Label column (detected when it is named label/target/y).")
@click.option("--ci", "cis", default="", metavar="github,gitlab",
              help="Also write the pipeline for these CI systems (as `mlci-gen render` does).")
@click.option("--ref", default=None, help="Version of ml-cicd the pipelines use, as for `mlci-gen render`.")
def init(directory: str, force: bool, label: str | None, cis: str, ref: str | None) -> None:
    """Write a commented mlci.yaml for the project in DIR, detecting data files and columns."""
    from mlcicd.gen import commands

    wanted = tuple(dict.fromkeys(c.strip() for c in cis.split(",") if c.strip()))
    sys.exit(commands.init(directory, force=force, label=label, cis=wanted, echo=click.echo,
                           err=lambda t: click.echo(t, err=True), ref=ref))


@mlci_gen.command()
@click.option("--ci", required=True, type=click.Choice(["github", "gitlab"]))
@click.option("--ref", default=None,
              help="Version of ml-cicd to use. Default on GitHub: the commit of this installed release "
              "(`@<sha>  # v<version>`, pinned); on GitLab: 1 (the latest 1.x.y). A tag such as v1 can be moved.")
@click.option("--source", default=None, help="Project path of ml-cicd (default: org/ml-cicd).")
@click.option("--config", default="mlci.yaml", show_default=True, help="mlci.yaml, relative to the repository root.")
@click.option("--output", default=None, help="Write the pipeline to this file instead of printing it.")
def render(ci: str, ref: str | None, source: str | None, config: str, output: str | None) -> None:
    """Render the whole pipeline (GitHub workflow or .gitlab-ci.yml) from mlci.yaml."""
    from mlcicd.gen import commands

    sys.exit(commands.render(ci, ref=ref, source=source, config=config, output=output,
                             echo=lambda t: click.echo(t, nl=False), err=lambda t: click.echo(t, err=True)))


@mlci_gen.command()
@click.option("--config", default="mlci.yaml", show_default=True)
@click.option("--source", default="org/ml-cicd", show_default=True,
              help="Project path of ml-cicd, to recognise its components in a hand-written .gitlab-ci.yml.")
def check(config: str, source: str) -> None:
    """Validate mlci.yaml and the pipelines: exit 1 with a diff when a generated pipeline drifted,
    exit 2 when a .gitlab-ci.yml passes an input an ml-cicd component does not accept."""
    from mlcicd.gen import commands

    sys.exit(commands.check(config, echo=click.echo, source=source))


@mlci_gen.command()
@click.argument("version")
@click.option("--file", "path", default="CHANGELOG.md", show_default=True, type=click.Path(dir_okay=False))
def changelog(version: str, path: str) -> None:
    """Print the CHANGELOG.md section of VERSION (the release notes the release pipelines publish)."""
    from pathlib import Path

    from mlcicd.errors import UsageError
    from mlcicd.gen.changelog import section

    try:
        if not Path(path).is_file():
            raise UsageError("file not found", where=path, fix="run in the repository root or pass --file")
        click.echo(section(Path(path).read_text(encoding="utf-8"), version, where=path), nl=False)
    except UsageError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)


@mlci_gen.command()
@click.option("--check", is_flag=True, help="Write nothing; exit 1 listing every file that differs (drift).")
@click.option("--root", default=".", show_default=True, type=click.Path(file_okay=False),
              help="Root of the ml-cicd checkout.")
def sync(check: bool, root: str) -> None:
    """Render this repo's actions, GitLab components and README tables from the stage catalogue."""
    from mlcicd.gen import commands

    sys.exit(commands.sync(root, check=check, echo=click.echo))


if __name__ == "__main__":  # pragma: no cover
    mlci()
