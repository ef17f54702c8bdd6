"""Model-from-code file of the no-code deployment wrapper (saved into each wrapped MLflow model).

A model registered without an MLmodel file but with ``framework`` / ``framework_version`` tags and a
joblib/pickle file (seed 003's ``Model.register(..., model_framework=...)``) is saved as an MLflow
pyfunc model from this file, with the file as the ``model_file`` artifact: the scoring server loads
it with joblib (or pickle) and calls the estimator's ``predict``. MLflow copies this file into the
saved model, so serving does not need this plugin installed in the model's environment.
"""

import pickle

import mlflow


class FrameworkModel(mlflow.pyfunc.PythonModel):
    """Serves a pickled/joblib estimator through its ``predict``."""

    def load_context(self, context):
        path = context.artifacts["model_file"]
        if path.endswith(".joblib"):
            import joblib

            self.model = joblib.load(path)
        else:
            with open(path, "rb") as handle:
                self.model = pickle.load(handle)

    def predict(self, context, model_input, params=None):
        if not hasattr(self.model, "feature_names_in_") and hasattr(model_input, "to_numpy"):
            model_input = model_input.to_numpy()  # fitted on arrays: column names mean nothing to it
        return self.model.predict(model_input)


mlflow.models.set_model(FrameworkModel())
