"""``mlci-gen``: the published surfaces and the pipelines, rendered from the catalogue.

Layers, each importing only those before it (a unit test keeps it so):

1. ``render_util``: jinja, YAML quoting, CI YAML walkers (nothing about stages);
2. ``surfaces``: what each action and component declares, from :mod:`mlcicd.catalog`;
3. ``component_inputs``: the inputs a pipeline passes to a component, checked as GitLab would;
4. ``pipeline_check``: a rendered pipeline, checked as the CI would;
5. rendering: ``pipeline`` (a user's pipeline), ``full_pipeline`` (this repo's whole-pipeline
   workflow and component), ``repo_files`` (everything ``mlci-gen sync`` writes), ``scaffold``;
6. ``commands``: one function per ``mlci-gen`` command (render, check, sync, init).
"""
