"""The model-worker process: handler loading, the per-worker Context and batch execution."""
