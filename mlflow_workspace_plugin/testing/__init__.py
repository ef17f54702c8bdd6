"""Stand-ins for tests and benchmarks: a real ``mlflow server`` on 127.0.0.1 behind a local front door
that plays the managed workspace gateway (:mod:`.servers`, :mod:`.front_door`). Nothing else in
the package imports this."""
