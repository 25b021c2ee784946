#!/usr/bin/env python3
"""Drives the CUDA build's `tessera worker` the way the workbench does (docs/worker-protocol.md):
hello, the device list, then TesseraQ runs on the GPU (stories260K and TinyStories-656K), each
evaluated. Every line the worker writes goes to OUT/worker-stream.jsonl; a summary (devices,
results, seconds, counts of each message and event kind) to stdout; the stories260K run's run.json
and events.jsonl are copied to OUT/gpu-run/ (the workbench replays them: tests/gui fixture).

    python3 installers/gpu-worker-jobs.py BUILD/app/tessera DATA_DIR OUT_DIR
"""
import collections
import json
import os
import shutil
import subprocess
import sys
import time

tessera, data, out = sys.argv[1:4]
runs = "/tmp/tessera-gpu-worker-runs"
shutil.rmtree(runs, ignore_errors=True)
os.makedirs(out, exist_ok=True)

HELLO = {"type": "hello", "protocol": "tessera-worker", "version": "1.0", "role": "client"}


def tesseraq(model, calib, eval_text, run_dir, tokenizer=""):
    config = {"model": model, "tokenizer": tokenizer, "calib": calib, "method": "tesseraq", "wbits": 2,
              "group": 32, "samples": 64, "seq_len": 256, "seed": 42, "device": "cuda", "batch": 8,
              "tesseraq": {"init": "awq", "schedule": "paper10", "steps": 100, "batch": 4, "log_every": 5}}
    return {"config": config, "run_dir": run_dir, "resume": False, "eval_text": eval_text}


jobs = [
    ("devices", {}),
    ("quantize", tesseraq(f"{data}/models/stories260K/stories260K.bin", f"{data}/text/tinystories/train-sample.txt",
                          f"{data}/text/tinystories/sample.txt", f"{runs}/stories260K")),
    ("quantize", tesseraq(f"{data}/models/TinyStories-656K", f"{data}/text/tinystories/train-sample.txt",
                          f"{data}/text/tinystories/sample.txt", f"{runs}/tinystories656K")),
]

stream = open(os.path.join(out, "worker-stream.jsonl"), "w")
stderr = open(os.path.join(out, "worker-stderr.log"), "w")
proc = subprocess.Popen([tessera, "worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
                        text=True, bufsize=1)


def receive():
    line = proc.stdout.readline()
    if not line:
        raise SystemExit(f"the worker ended early (exit status {proc.wait()}); see worker-stderr.log")
    stream.write(line)
    return json.loads(line)


def send(message):
    proc.stdin.write(json.dumps(message) + "\n")
    proc.stdin.flush()


hello = receive()
print("worker hello:", json.dumps(hello))
send(HELLO)
failures = 0
for job, (kind, fields) in enumerate(jobs, start=1):
    send(dict(fields, type=kind, job=job))
    counts = collections.Counter()
    start = time.time()
    while True:
        m = receive()
        counts[m["type"] if m["type"] != "event" else "event:" + m["event"]["kind"]] += 1
        if m.get("job") == job and m["type"] in ("result", "error", "cancelled"):
            break
    seconds = time.time() - start
    print(f"\n== job {job}: {kind} ({seconds:.1f} s), messages: {dict(counts)}")
    if m["type"] != "result":
        failures += 1
        print("FAILED:", json.dumps(m))
        continue
    r = m["result"]
    if kind == "devices":
        for d in r:
            print(f"  {d['id']}: {d['name']}, {d['total_bytes'] / 2**30:.1f} GiB ({d['free_bytes'] / 2**30:.1f} free)")
        if not any(d["id"].startswith("cuda") for d in r):
            failures += 1
            print("FAILED: no CUDA device listed")
    else:
        print(f"  {r['run_dir']}: {r['blocks']} blocks in {r['seconds']:.1f} s, ppl {r['ppl']:.6f}, "
              f"peak GPU {r['peak_gpu_bytes'] / 2**20:.1f} MiB, peak RSS {r['peak_rss_bytes'] / 2**20:.0f} MiB, "
              f"placement {r['placement']}, calibration {r['calibration_sha256'][:16]}")
proc.stdin.close()
print("\nworker exit status", proc.wait())

fixture = os.path.join(out, "gpu-run")
os.makedirs(fixture, exist_ok=True)
for name in ("run.json", "events.jsonl"):
    src = os.path.join(runs, "stories260K", name)
    if os.path.exists(src):
        shutil.copy(src, os.path.join(fixture, name))
        print("copied", src, os.path.getsize(src), "bytes")
sys.exit(1 if failures else 0)
