"""Is a torch run bit-reproducible on this machine's GPU? Run twice per setting and compare records.

Usage (on a machine with CUDA): python scripts/gpu_determinism.py [OUT.json]
Prints, per model and setting, whether two runs of the same spec and seed gave identical
final weights norms and histories, and the largest difference when they did not.
"""
import json
import sys

import torch

from core.spec import OptimizerSpec, RunSpec
from torch_impl import seeding, worker


def compare(a: dict, b: dict) -> float:
    diffs = [abs(a["norms"][k] - b["norms"][k]) for k in a["norms"]]
    diffs += [abs(x["loss"] - y["loss"]) for x, y in zip(a["history"], b["history"])]
    return max(diffs)


def main(path=None):
    results = {"device": worker.device(), "torch": torch.__version__,
               "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None}
    for deterministic in (False, True):
        if deterministic:
            import os

            os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"
            seeding.enable_determinism()
        for model in ("mlp", "cnn"):
            spec = RunSpec(model=model, framework="torch", regularization="penalty", epochs=3, seed=0,
                           optimizer=OptimizerSpec("adam"))
            a, b = worker.Run().run(spec.to_dict()), worker.Run().run(spec.to_dict())
            key = f"{model}, deterministic={deterministic}"
            results[key] = {"identical": compare(a, b) == 0.0, "max_diff": compare(a, b)}
    print(json.dumps(results, indent=1))
    if path:
        with open(path, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main(*sys.argv[1:])
