"""Reliable logging for ``azureml://`` workspaces: journal first, send in the background.

``log_metric`` / ``log_param`` / ``set_tag`` / ``log_batch`` write to a per-process SQLite
journal (:mod:`.journal`) and return; a worker (:mod:`.pipeline`) coalesces the entries into
``log_batch`` requests (:mod:`.batching`) and sends them with retries (:mod:`.sender`).
Journals left behind by dead processes are replayed by :mod:`.replay` (automatically, or with
``mlflow-workspace sync``). Settings: :mod:`.settings`.
"""
