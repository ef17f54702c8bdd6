"""MLflow stores for ``azureml://`` workspaces: tracking, model registry and artifacts.

Builder modules (``tracking``, ``registry``, ``artifacts``) are entry points and import MLflow's
REST machinery lazily; the store classes live in ``rest`` and ``artifact_repo``.
"""
