"""``python -m mlcicd.serving.check --model-dir DIR``: can this environment serve the model?

build-image runs it inside the image being built, as the server's user: it loads the
model exactly as the server does and answers the model's own input example (MLflow's
``serving_input_example.json``) through the server's request parsing. A missing library,
a wheel built for another platform or an unloadable model then fails the build with the
traceback, instead of a deploy failing its health checks later.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

EXAMPLE = "serving_input_example.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlcicd.serving.check", description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", required=True)
    args = parser.parse_args(argv)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlcicd.serving.service import ModelService, to_json_predictions

    started = time.monotonic()
    service = ModelService("check", "0", None)
    service.load(args.model_dir)
    loaded = time.monotonic() - started
    example = Path(args.model_dir) / EXAMPLE
    if not example.is_file():
        print(f"ml-cicd check: the model loads ({loaded:.1f} s); it has no {EXAMPLE} to answer", flush=True)
        return 0
    data, params = service.parse(example.read_bytes(), "application/json")
    predictions, rows = to_json_predictions(service.predict(data, params))
    print(f"ml-cicd check: the model loads ({loaded:.1f} s) and answers its input example "
          f"({len(rows)} rows): {json.dumps(predictions)[:200]}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
