"""Getting a model version in front of traffic: targets, metric sources, the canary judge."""
