"""A pyfunc model whose behaviour a test switches at run time, to inject faults into a canary.

Logged with MLflow's models-from-code (this file is copied into the model), so the model
server loads it like any other model. The switch is a file named in the model config:
``error`` makes every prediction raise (the server answers 500), ``slow:<ms>`` delays each
prediction, anything else (or no file) answers normally with a simple rule on ``f0``.
"""

import time
from pathlib import Path

import mlflow
from mlflow.pyfunc import PythonModel


class SwitchableModel(PythonModel):
    def load_context(self, context):
        self.switch = Path(context.model_config["switch"])

    def predict(self, context, model_input, params=None):
        mode = self.switch.read_text().strip() if self.switch.exists() else ""
        if mode == "error":
            raise RuntimeError("injected fault")
        if mode.startswith("slow:"):
            time.sleep(float(mode[5:]) / 1000)
        return (model_input["f0"].fillna(0) > 0).astype(int).to_numpy()


mlflow.models.set_model(SwitchableModel())
