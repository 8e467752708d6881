"""Run re-splits of the harmonics protocol on the GPU until a deadline; resumable via a JSON bundle."""
import json, os, sys, time
import numpy as np
import torch
sys.path.insert(0, "src")
from crackscope.engine import harmonics_protocol as hp

epochs, resplits, batch, deadline = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
t_start = time.perf_counter()
d = np.load("runs/gpu_carry/store.npz")
data = hp.StudyData(d["harmonics"], d["labels"].astype(np.int64), json.load(open("runs/gpu_carry/identity.json")))
settings = hp.StudySettings(epochs=epochs, seed=0, batch_size=batch)
prev = "runs/gpu_carry/prev_bundle.json"
bundle = json.load(open(prev)) if os.path.exists(prev) else {"identity": hp.study_identity(data, settings), "records": {}}
assert bundle["identity"] == hp.study_identity(data, settings), "settings differ from the carried bundle"
out = os.path.join(os.environ["OUT"], "bundle.json")
print(torch.cuda.get_device_name(0), "done before:", sorted(bundle["records"]), flush=True)
last = None
for r in range(resplits):
    if str(r) in bundle["records"]:
        continue
    if last is not None and time.perf_counter() - t_start + 1.15 * last > deadline:
        print("deadline: stopping before re-split", r, flush=True)
        break
    rec = hp.run_resplit(data, settings, r, device="cuda")
    last = rec["seconds"]
    bundle["records"][str(r)] = rec
    tmp = out + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(bundle, fh)
    os.replace(tmp, out)
    acc = rec["accuracy"]
    print(f"r{r}: {rec['seconds']:.1f} s  h2 " + " ".join(f"{acc[s]['h2']:.3f}" for s in "abc")
          + f"  multi {acc['multi']['multi_conflict_weighted']:.3f}", flush=True)
print("total", time.perf_counter() - t_start, flush=True)
