"""Verifiers: decide whether a completion is correct against the ground truth."""
