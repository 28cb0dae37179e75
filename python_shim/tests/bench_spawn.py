"""Latency and CPU cost of one no-op execution, through a real zygote.

    python3 python_shim/tests/bench_spawn.py [--runs N] [--gap S] [--stats] [--profile]

Not a unit test (the name does not match test*.py). The workflow is the
one of benches/executions.rs: `flows/noop.py` imports `h.tiny`, both in
namespace packages (4 `find` round trips). The zygote is started as the
worker starts it (fake_worker.FakeWorker); the executions are driven by a
lean loop with pre-encoded replies, so the figures are the shim's, not
fake_worker's.

Default mode: p50/p90 from sending `spawn` to receiving `result`, and the
zygote's own CPU time and minor page faults per execution (/proc). With
--gap S, each execution starts S seconds after the previous one ended
(the worker's database work between two executions); without it they run
back to back.

--stats boots the zygote with an instrumented copy of runeflow/_zygote.py
that records, in each child at os._exit: its CPU time, its minor page
faults (in total, and before `_child`, the body that runs once the child
has its execution), young-object collections, and the modules imported
after fork. --profile adds a cProfile of `_child` (sorted by --sort).
"""

import argparse
import glob
import json
import os
import socket
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import fake_worker  # noqa: E402
from fake_worker import FakeWorker  # noqa: E402

FILES = {
    "flows/noop.py": "from runeflow import workflow\nimport h.tiny\n\n\n@workflow\ndef noop():\n    return 1\n",
    "h/tiny.py": "X = 1\n",
}
PRELOAD = ["json", "asyncio", "logging", "traceback"]  # the worker's default

# Appended to _zygote.py by --stats: wraps _child to record figures at os._exit.
PROBE = r'''
def _bench_wrap(inner, out_dir, profile):
    def child(*args):
        import resource, json as _json
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        gc0 = [g["collections"] for g in gc.get_stats()]
        real_exit = os._exit
        prof = None
        if profile:
            import cProfile
            prof = cProfile.Profile()
            prof.enable()
        def exit_(status):
            ru = resource.getrusage(resource.RUSAGE_SELF)  # before the probe's own work
            if prof is not None:
                prof.disable()
                prof.dump_stats(f"{out_dir}/{os.getpid()}.prof")
            with open(f"{out_dir}/{os.getpid()}.json", "w") as f:
                _json.dump({"cpu": ru.ru_utime + ru.ru_stime, "cpu_before": ru0.ru_utime + ru0.ru_stime,
                            "minflt": ru.ru_minflt, "minflt_before": ru0.ru_minflt,
                            "gc": [g["collections"] - c for g, c in zip(gc.get_stats(), gc0)],
                            "new_modules": sorted(set(sys.modules) - _BENCH_BEFORE)}, f)
            real_exit(status)
        os._exit = exit_
        inner(*args)
    return child
_child = _bench_wrap(_child, OUT_DIR, PROFILE)
_bench_serve = _serve
def _serve(control):
    global _BENCH_BEFORE
    _BENCH_BEFORE = frozenset(sys.modules)  # in the zygote, once
    _bench_serve(control)
'''


class ProbedWorker(FakeWorker):
    """A FakeWorker whose zygote runs the probe above."""

    def __init__(self, out_dir, profile, **kw):
        super().__init__(**kw)
        self.out_dir, self.profile = out_dir, profile

    def start(self):
        real = fake_worker.shim_sources

        def sources():
            files = real()
            files["runeflow/_zygote.py"] += (
                f"\nOUT_DIR = {self.out_dir!r}\nPROFILE = {self.profile!r}\n" + PROBE)
            return files
        fake_worker.shim_sources = sources
        try:
            return super().start()
        finally:
            fake_worker.shim_sources = real


def _frame(message):
    body = json.dumps(message).encode("utf-8")
    return len(body).to_bytes(4, "big") + body


def timed_runs(worker, runs, gap=0.0):
    """spawn -> result times (ns) of `runs` no-ops; replies encoded once."""
    ws = fake_worker.Workspace(FILES)
    replies = {}
    run_frame = _frame({"op": "run", "execution_id": "e", "path": "flows/noop.py",
                        "module": "flows.noop", "function": "noop", "parameters": {},
                        "top_level": ws.top_level(), "root": worker.root,
                        "max_log_bytes": 1 << 20})
    spawn_frame = _frame({"op": "spawn", "execution_id": "e",
                          "rlimits": {"as_bytes": 2048 << 20, "cpu_seconds": None}})
    times = []
    for _ in range(runs):
        if gap:
            time.sleep(gap)
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
                frame = replies[body] = _frame(ws.find(json.loads(body)["name"]))
            ours.sendall(frame)
        times.append(time.perf_counter_ns() - t)
        result = json.loads(body)
        assert result["status"] == "success" and result["value"] == 1, result
        ours.close()
    return times


def pct(values, q):
    values = sorted(values)
    return values[min(int(len(values) * q), len(values) - 1)]


def _proc_stat(pid):
    """(minor faults, CPU seconds) of process `pid` so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[7]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timing(args):
    with FakeWorker(preload=PRELOAD) as worker:
        timed_runs(worker, 30, args.gap)  # warm-up
        zygote = worker.ready["pid"]
        before = _proc_stat(zygote)
        times = timed_runs(worker, args.runs, args.gap)
        after = _proc_stat(zygote)
    print("spawn -> result: p50 %.2f ms, p90 %.2f ms (n=%d, gap %.1f ms)" % (
        pct(times, .5) / 1e6, pct(times, .9) / 1e6, len(times), args.gap * 1e3))
    print("zygote per execution: %.0f minor faults, %.2f ms CPU" % (
        (after[0] - before[0]) / args.runs, (after[1] - before[1]) / args.runs * 1e3))


def stats(args):
    out = tempfile.mkdtemp(prefix="rf-bench-")
    real_kill = fake_worker._kill_group
    fake_worker._kill_group = lambda pid: None  # let children write their figures
    try:
        with ProbedWorker(out, args.profile, preload=PRELOAD) as worker:
            timed_runs(worker, args.runs, args.gap)
            time.sleep(0.3)
    finally:
        fake_worker._kill_group = real_kill
    rows = [json.load(open(p)) for p in glob.glob(out + "/*.json")]
    print(f"children: {len(rows)}")
    print("child CPU p50 %.2f ms (%.2f ms of it before _child)" % (
        pct([r["cpu"] for r in rows], .5) * 1e3, pct([r["cpu_before"] for r in rows], .5) * 1e3))
    print("child minor faults p50 %d (%d of them before _child)" % (
        pct([r["minflt"] for r in rows], .5), pct([r["minflt_before"] for r in rows], .5)))
    print("young-object collections per child (gen0, gen1, gen2), mean:",
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
        st.sort_stats(args.sort).print_stats(40)
    print("raw figures in", out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--gap", type=float, default=0.0, help="seconds between executions")
    ap.add_argument("--stats", action="store_true")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--sort", default="tottime")
    args = ap.parse_args()
    if args.stats or args.profile:
        stats(args)
    else:
        timing(args)


if __name__ == "__main__":
    main()
