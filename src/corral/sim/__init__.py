"""corral.sim: hollow nodes for scale tests and benchmarks."""
