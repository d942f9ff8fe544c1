"""Models-from-code entry point: MLflow copies and runs this file to build the registered pyfunc,
so the registry holds code and the trained model files, never a pickled Python object."""
import mlflow

from musicgenre.registry import GenreClassifier

mlflow.models.set_model(GenreClassifier())
