"""Where an ONNX graph spends its time: onnxruntime's profiler on one clip, summed by op type.

    python bench/onnx_profile.py [GRAPH] [--runs 4] [--threads 2]

GRAPH defaults to the int8 export that bench/speed.py cached for the Large config; the clip is its 10 s
clip (run `python bench/speed.py --cases clip --impls ours-onnx-int8` first). The last run is profiled,
after the others have warmed the session up.
"""

import argparse
import collections
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from speed import WORK, load_arrays


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("graph", nargs="?", help="an ONNX file of our export (default: the bench's Large int8 export)")
    p.add_argument("--runs", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    graph = a.graph or next(iter(sorted((WORK / "cache" / "onnx").glob("*/model.int8.onnx"))), None)
    if graph is None or not (WORK / "clip10s.npz").is_file():
        raise SystemExit("no cached export or clip: run `python bench/speed.py --cases clip --impls ours-onnx-int8`")
    wav = load_arrays(WORK / "clip10s.npz")[0].astype(np.float32)[None]
    options = ort.SessionOptions()
    options.intra_op_num_threads = a.threads
    options.enable_profiling = True
    options.log_severity_level = 3  # the `normalize` input's default is an initializer, by design
    options.profile_file_prefix = str(Path(tempfile.gettempdir()) / "unispeech-onnx-profile")
    session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
    feeds = {"input_values": wav, "input_lengths": np.array([wav.shape[1]], np.int64), "normalize": np.array(False)}
    for i in range(a.runs):
        start = time.perf_counter()
        session.run(None, feeds)
        print(f"run {i + 1}: {time.perf_counter() - start:.3f} s")
    trace = session.end_profiling()
    events = json.loads(Path(trace).read_text())
    os.remove(trace)
    last = [e for e in events if e.get("name") == "model_run"][-1]
    by_op = collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time") and e["ts"] >= last["ts"]:
            by_op[e["args"]["op_name"]] += e["dur"]
    print(f"\n{graph}\nprofiled run: {last['dur'] / 1e6:.3f} s\n\n| op | seconds |\n|---|---|")
    for op, micros in by_op.most_common():
        if micros >= 1000:
            print(f"| {op} | {micros / 1e6:.3f} |")


if __name__ == "__main__":
    main()
