"""Latency/CPU probe of one no-op execution through the fake worker.

    python3 python_shim/tests/bench_spawn.py [--runs N] [--stats] [--profile]

Times `spawn` sent -> `result` received for a no-op workflow (p50/p90 over
N runs). With --stats the zygote is booted with an instrumented copy of
runeflow/_zygote.py that records, per child, CPU time, minor page faults,
the modules imported after fork and perf_counter checkpoints (written to a
file at os._exit, so the timing runs stay unmodified). Not a unit test (the
name does not match test*.py).
"""

import argparse
import glob
import json
import os
import statistics
import sys
import socket
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import fake_worker  # noqa: E402
from fake_worker import FakeWorker  # noqa: E402

# As in benches/executions.rs: both folders are namespace packages.
FILES = {
    "flows/noop.py": "from runeflow import workflow\nimport h.tiny\n\n\n@workflow\ndef noop():\n    return 1\n",
    "h/tiny.py": "X = 1\n",
}

# Appended to _zygote.py in --stats mode: wraps the child's execution body
# (_run_child, or _child in older shims) to record figures at os._exit.
PROBE = r'''
def _bench_wrap(inner, out_dir, profile):
    def child(*args):
        import resource, time, json as _json
        t0 = time.perf_counter_ns()
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        gc0 = [g["collections"] for g in gc.get_stats()]
        real_exit = os._exit
        prof = None
        if profile:
            import cProfile
            prof = cProfile.Profile()
            prof.enable()
        def exit_(status):
            t1 = time.perf_counter_ns()
            ru = resource.getrusage(resource.RUSAGE_SELF)  # before the probe's own work
            if prof is not None:
                prof.disable()
                prof.dump_stats(f"{out_dir}/{os.getpid()}.prof")
            with open(f"{out_dir}/{os.getpid()}.json", "w") as f:
                _json.dump({"wall_ns": t1 - t0, "utime": ru.ru_utime, "stime": ru.ru_stime,
                            "minflt": ru.ru_minflt, "minflt_before": ru0.ru_minflt,
                            "cpu_before": ru0.ru_utime + ru0.ru_stime,
                            "gc": [g["collections"] - c for g, c in zip(gc.get_stats(), gc0)],
                            "new_modules": sorted(set(sys.modules) - _BENCH_BEFORE)}, f)
            real_exit(status)
        os._exit = exit_
        inner(*args)
    return child
if "_run_child" in globals():
    _run_child = _bench_wrap(_run_child, OUT_DIR, PROFILE)
else:
    _child = _bench_wrap(_child, OUT_DIR, PROFILE)
_bench_serve = _serve
def _serve(control):
    global _BENCH_BEFORE
    _BENCH_BEFORE = frozenset(sys.modules)  # in the zygote, once
    _bench_serve(control)
'''


class ProbedWorker(FakeWorker):
    def __init__(self, out_dir, profile, **kw):
        super().__init__(**kw)
        self.out_dir, self.profile = out_dir, profile

    def start(self):
        real = fake_worker.shim_sources

        def sources():
            files = real()
            files["runeflow/_zygote.py"] += (f"\nOUT_DIR = {self.out_dir!r}\nPROFILE = {self.profile!r}\n"
                                             + PROBE)
            return files
        fake_worker.shim_sources = sources
        try:
            return super().start()
        finally:
            fake_worker.shim_sources = real


def _frame(message):
    body = json.dumps(message).encode("utf-8")
    return len(body).to_bytes(4, "big") + body


def timed_runs(worker, runs):
    """spawn -> result times of `runs` no-ops, driven without fake_worker's
    per-request overhead: replies are encoded once, like a fast worker."""
    ws = fake_worker.Workspace(FILES)
    replies = {}
    run_frame = _frame({"op": "run", "execution_id": "e", "path": "flows/noop.py",
                        "module": "flows.noop", "function": "noop", "parameters": {},
                        "top_level": ws.top_level(), "root": worker.root,
                        "max_log_bytes": 1 << 20})
    spawn_frame = _frame({"op": "spawn", "execution_id": "e",
                          "rlimits": {"as_bytes": 2048 << 20, "cpu_seconds": None}})
    times = []
    for i in range(runs):
        ours, theirs = socket.socketpair()
        t = time.perf_counter_ns()
        sent = socket.send_fds(worker.control, [spawn_frame[:1]], [theirs.fileno()])
        worker.control.sendall(spawn_frame[sent:])
        reply = fake_worker.recv_frame(worker.control)
        theirs.close()
        assert reply["op"] == "spawned", reply
        ours.sendall(run_frame)
        while True:
            header = ours.recv(4, socket.MSG_WAITALL)
            body = ours.recv(int.from_bytes(header, "big"), socket.MSG_WAITALL)
            if b'"op":"result"' in body:
                break
            frame = replies.get(body)
            if frame is None:  # first time: ask the fake worker's workspace
                message = json.loads(body)
                frame = replies[body] = _frame(ws.find(message["name"]))
            ours.sendall(frame)
        times.append(time.perf_counter_ns() - t)
        result = json.loads(body)
        assert result["status"] == "success" and result["value"] == 1, result
        ours.close()
    return times


def pct(values, q):
    values = sorted(values)
    return values[min(int(len(values) * q), len(values) - 1)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--stats", action="store_true")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--preload", default="json,asyncio,logging,traceback")
    args = ap.parse_args()
    preload = [p for p in args.preload.split(",") if p]
    if args.stats or args.profile:
        out = tempfile.mkdtemp(prefix="rf-bench-")
        fake_worker._kill_group = lambda pid: None  # let children write their figures
        with ProbedWorker(out, args.profile, preload=preload) as w:
            timed_runs(w, args.runs)
            time.sleep(0.2)
        rows = [json.load(open(p)) for p in glob.glob(out + "/*.json")]
        print(f"children: {len(rows)}")
        print("child body wall (start of its execution body -> os._exit) p50 %.3f ms" % (
            pct([r["wall_ns"] for r in rows], .5) / 1e6))
        print("child cpu total p50 %.3f ms (user %.3f, sys %.3f), of which before the body %.3f" % (
            pct([r["utime"] + r["stime"] for r in rows], .5) * 1e3,
            statistics.mean(r["utime"] for r in rows) * 1e3,
            statistics.mean(r["stime"] for r in rows) * 1e3,
            pct([r["cpu_before"] for r in rows], .5) * 1e3))
        print("minor faults total p50 %d, of which before the body %d" % (
            pct([r["minflt"] for r in rows], .5), pct([r["minflt_before"] for r in rows], .5)))
        print("gc collections per child (gen0, gen1, gen2) mean:",
              [round(statistics.mean(r["gc"][g] for r in rows), 2) for g in range(3)])
        mods = rows[-1]["new_modules"]
        print(f"modules imported after fork: {len(mods)}: {mods}")
        if args.profile:
            import pstats
            profs = glob.glob(out + "/*.prof")
            st = pstats.Stats(profs[0], stream=open(os.devnull, "w"))
            for p in profs[1:]:
                st.add(p)
            st.stream, st.files = sys.stdout, []
            st.sort_stats(os.environ.get("SORT", "tottime")).print_stats(int(os.environ.get("TOP", "45")))
        print("results in", out)
        return
    with FakeWorker(preload=preload) as w:
        timed_runs(w, 30)  # warm-up
        times = timed_runs(w, args.runs)
    print("spawn->result p50 %.3f ms  p90 %.3f ms  mean %.3f ms (n=%d)" % (
        pct(times, .5) / 1e6, pct(times, .9) / 1e6, statistics.mean(times) / 1e6, len(times)))


if __name__ == "__main__":
    main()
