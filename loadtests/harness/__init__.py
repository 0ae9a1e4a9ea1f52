"""The load-test harness behind `loadtests/run.py`: processes, targets, generator, scenarios."""
