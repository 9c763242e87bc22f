"""Proper scores and coverage for Gaussian fields (``metrics``) and counts (``counts``)."""
