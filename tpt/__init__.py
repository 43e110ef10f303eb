"""tpt: Think, Prune, Train, Improve (arXiv 2504.18116). `tpt.loop` runs one experiment cell."""
