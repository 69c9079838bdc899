"""Cluster mode: the same service on Ray, with its events in PostgreSQL.

- `calls.py`: what crosses from a camera worker to a scorer (the inference seam's
  `ClipRequest`s, chained per camera so a scorer can tell when its cache misses);
- `scorer.py`: the Ray Serve deployment that runs the model, batching the clips of every
  camera that reaches a replica;
- `remote.py`: the camera side of a scorer call (a `Reconstructor` whose work runs on the
  scorers: misses are resent, failed calls retried);
- `worker.py`: the Ray actor that owns a group of cameras' pipelines, headless;
- `runtime.py`: joining or starting the Ray cluster, deploying scorers, placing workers;
- `web.py`: the web tier: the FastAPI app's `Service` with cameras on the workers and alerts
  from the database;
- `bench.py`: `clipwatch bench --cluster`.

Ray is imported only here, and only in cluster mode (`pip install clipwatch[cluster]`).
"""
