"""What ``fit`` learns from the user's own held-out cells: the held-out design, the spread calibration,
the kriging blend's kernel and weights, and the covariate choice."""
