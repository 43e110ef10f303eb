"""The four stages of a round, one module each: think, prune, train, eval. Each owns its body and the
files it writes (typed rows, documented once); `tpt.loop` runs them through `RunDir.run_stage`."""
