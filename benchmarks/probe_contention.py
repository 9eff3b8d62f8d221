"""Why reruns of bench_probes.py disagreed: the same timings with one core kept busy.

The organism's head and layer probes (bench_probes.py's features and split), medians of 7 runs
each: quiet; with another process spinning on one of the two cores; and the same with torch
limited to one thread. Results: ``benchmarks/results/probe_contention.json``.

    python benchmarks/probe_contention.py
"""

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_probes as B
import torch

import interp
from interp.analyses.probes import protocol as P
from interp.analyses.probes.data import from_model

model = interp.load_model("organism", device="cpu")
task = interp.tasks.facts(model, n=512, seed=0)
y = task.labels
train, test = P.make_split(y, "holdout", seed=0).folds[0]
res = {}
for over in ("heads", "layers"):
    src = from_model(model, task, over, "last", 64, progress=False)
    chunks = list(src.chunks())
    order = [i for idx, _ in chunks for i in idx]
    feats = torch.cat([x for _, x in chunks]).double()[torch.argsort(torch.tensor(order))]
    B.peer_loop(feats, y, train, test)
    B.ours(feats, y, train, test)
    for label, burn, threads in (
        ("quiet", False, 2),
        ("one core busy", True, 2),
        ("one core busy, torch 1 thread", True, 1),
    ):
        torch.set_num_threads(threads)
        burner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if burn else None
        time.sleep(0.5)
        p, o = [], []
        for _ in range(7):
            time.sleep(0.3)
            t0 = time.perf_counter()
            B.peer_loop(feats, y, train, test)
            p.append(time.perf_counter() - t0)
            time.sleep(0.3)
            t0 = time.perf_counter()
            B.ours(feats, y, train, test)
            o.append(time.perf_counter() - t0)
        if burner:
            burner.kill()
            burner.wait()
        torch.set_num_threads(2)
        mp, mo = statistics.median(p), statistics.median(o)
        res[f"{over}: {label}"] = (mp, mo, mp / mo)
        print(
            f"{over}: {label}: sklearn {mp:.3f} s, interp {mo:.4f} s -> {mp / mo:.1f}x", flush=True
        )
out = Path(__file__).resolve().parent / "results" / "probe_contention.json"
out.write_text(
    json.dumps(
        {k: {"sklearn_s": v[0], "interp_s": v[1], "speedup": v[2]} for k, v in res.items()},
        indent=1,
    )
    + "\n"
)
print(f"wrote {out}")
