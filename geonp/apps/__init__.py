"""Applications over the estimator: the command line, the demo, the recipe flows, the data catalog."""
