"""``mlci-gen``: scaffolding and (later) pipeline rendering from the catalogue."""
