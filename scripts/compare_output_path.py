"""Time the node's output path (render, labels, cloud arrays) and one query for each given
checkout, in one process after another, so that code changes are compared on equal terms
(this machine's speed varies from hour to hour; absolute figures are lsm-benchmark's job).

Usage: .venv/bin/python scripts/compare_output_path.py CHECKOUT [CHECKOUT ...]
e.g. a `git worktree add /tmp/base <rev>` next to this checkout.
"""
import subprocess
import sys

CHILD = r"""
import sys, time
import numpy as np
sys.path.insert(0, sys.argv[1] + "/lsm_ros")
from lsm_train.data.procedural import generate_sample
from lsm_train.data.sample import CLASS_NAMES
from lsm.inference import reconstruct_pairs
from lsm_ros.engine import load_engine
from lsm_ros.outputs import reconstruction_outputs

engine = load_engine("tiny", "", "cpu", "fp32", cpu_threads=2)
sample = generate_sample(3, size=(480, 640))
pair = (sample.context[0].image, sample.context[1].image)
labels = list(CLASS_NAMES)
outputs, queries = [], []
for _ in range(4):
    rec = reconstruct_pairs(engine.model, [pair], text_encoder=engine.text_encoder)[0]
    t = time.perf_counter()
    reconstruction_outputs(rec, labels, 0.0, 2, 100000)
    outputs.append(time.perf_counter() - t)
    t = time.perf_counter()
    rec.query("floor", labels, 0, 0.5)
    queries.append(time.perf_counter() - t)
print(f"{sys.argv[1]}: outputs {1000 * np.median(outputs[1:]):.0f} ms, "
      f"query {1000 * np.median(queries[1:]):.0f} ms (median of 3 after a warm-up)")
"""

if __name__ == "__main__":
    for checkout in sys.argv[1:]:
        subprocess.run([sys.executable, "-c", CHILD, checkout], check=True, cwd="/")
