"""Development tests of the Python shim, through a real zygote process.

    python3 -m unittest discover -s python_shim/tests

The zygote is started exactly as the Rust worker starts it (see
fake_worker.py); the acceptance tests proper go through the real worker.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SHIM = os.path.dirname(HERE)
FIDELITY = os.path.join(SHIM, "fidelity")
sys.path.insert(0, HERE)
sys.path.insert(1, SHIM)
sys.dont_write_bytecode = True

import fake_worker  # noqa: E402
from fake_worker import FakeWorker, load_tree, recv_frame, send_frame  # noqa: E402

import runeflow  # noqa: E402
from runeflow import _hook, _output, _protocol  # noqa: E402

ROOT = fake_worker.DEFAULT_ROOT
WORKER = None


def setUpModule():
    global WORKER
    WORKER = FakeWorker().start()


def tearDownModule():
    WORKER.stop()


def src(text):
    return textwrap.dedent(text).lstrip("\n")


def run(files, path="flows/main.py", function="main", parameters=None, **kwargs):
    """Runs a workflow through the shared zygote."""
    return WORKER.run({k: src(v) if isinstance(v, str) else v for k, v in files.items()},
                      path, function, parameters, **kwargs)


class ZygoteTest(unittest.TestCase):
    def test_ready_reports_pid_and_version(self):
        self.assertEqual(WORKER.ready["op"], "ready")
        self.assertEqual(WORKER.ready["python"], "%d.%d.%d" % sys.version_info[:3])
        self.assertEqual(WORKER.ready["pid"], WORKER.process.pid)

    def test_spawn_without_descriptor_is_refused_and_zygote_lives_on(self):
        send_frame(WORKER.control, {"op": "spawn", "execution_id": "x", "rlimits": {}})
        reply = recv_frame(WORKER.control)
        self.assertEqual(reply["op"], "error")
        self.assertIn("one or two descriptors", reply["message"])
        self.assertEqual(run({"flows/main.py": "def main():\n    return 1\n"}).value, 1)

    def test_unknown_op_is_refused_and_its_descriptor_closed(self):
        a, b = socket.socketpair()
        send_frame(WORKER.control, {"op": "dance"}, fds=[b.fileno()])
        b.close()
        self.assertEqual(recv_frame(WORKER.control)["op"], "error")
        a.settimeout(5)
        self.assertEqual(a.recv(1), b"")  # the zygote closed its copy
        a.close()

    def test_zygote_exits_cleanly_on_eof(self):
        worker = FakeWorker().start()
        worker.control.close()
        worker.control = None
        self.assertEqual(worker.process.wait(timeout=10), 0)
        worker.stop()
        self.assertEqual(worker.stderr, "")

    def test_child_process_setup(self):
        execution = run({"flows/main.py": """
            import os, resource, signal, subprocess, sys
            def main():
                return {
                    "own_group": os.getpgid(0) == os.getpid(),
                    "stdin": os.path.samestat(os.fstat(0), os.stat(os.devnull)),
                    "sigchld_default": signal.getsignal(signal.SIGCHLD) == signal.SIG_DFL,
                    "subprocess_rc": subprocess.run(["true"]).returncode,
                    "subprocess_stdin": subprocess.run(["cat"], capture_output=True).returncode,
                    "as": resource.getrlimit(resource.RLIMIT_AS)[0],
                    "cpu": resource.getrlimit(resource.RLIMIT_CPU)[0],
                    "isolated": sys.flags.isolated,
                    "no_bytecode": sys.dont_write_bytecode,
                    "argv": sys.argv,
                    "sdk_file": __import__("runeflow").__file__,
                }
        """}, rlimits={"as_bytes": 4 << 30, "cpu_seconds": 120})
        self.assertEqual(execution.status, "success", execution.error)
        value = execution.value
        self.assertTrue(value["own_group"])
        self.assertTrue(value["stdin"])
        self.assertTrue(value["sigchld_default"])
        self.assertEqual((value["subprocess_rc"], value["subprocess_stdin"]), (0, 0))
        self.assertEqual((value["as"], value["cpu"]), (4 << 30, 120))
        self.assertEqual((value["isolated"], value["no_bytecode"]), (1, True))
        self.assertEqual(value["argv"], [f"{ROOT}/flows/main.py"])
        self.assertEqual(value["sdk_file"], "<runeflow-shim>/runeflow/__init__.py")

    def test_spawned_pid_is_the_child_in_its_own_group(self):
        execution = run({"flows/main.py": """
            import os
            def main():
                return [os.getpid(), os.getpgid(0), os.getppid()]
        """})
        self.assertEqual(execution.value, [execution.pid, execution.pid, WORKER.process.pid])

    def test_a_killed_spare_is_replaced(self):
        # The zygote's only live child between executions is its spare.
        deadline = time.monotonic() + 5
        while not (spares := children_of(WORKER.process.pid)) and time.monotonic() < deadline:
            time.sleep(0.01)
        for pid in spares:
            os.kill(pid, signal.SIGKILL)
        self.assertEqual(run({"flows/main.py": "def main():\n    return 1\n"}).value, 1)
        self.assertTrue(spares)

    def test_children_do_not_share_state(self):
        files = {"flows/main.py": """
            import sys
            def main():
                seen = hasattr(sys, "marker")
                sys.marker = True
                return seen
        """}
        self.assertEqual([run(files).value, run(files).value], [False, False])


def children_of(ppid):
    """Pids of the live processes whose parent is `ppid`."""
    pids = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == ppid and fields[0] != "Z":
            pids.append(int(entry))
    return pids


class ZygoteUnitTest(unittest.TestCase):
    def test_without_a_spare_the_zygote_refuses_requests(self):
        from runeflow import _zygote
        ours, theirs = socket.socketpair()
        self.addCleanup(ours.close)
        self.addCleanup(theirs.close)
        kept, sent = socket.socketpair()
        send_frame(ours, {"op": "spawn", "execution_id": "e", "rlimits": {}}, fds=[sent.fileno()])
        sent.close()
        self.assertIsNone(_zygote._refuse_one(theirs, "fork failed: test"))
        self.assertEqual(recv_frame(ours), {"op": "error", "message": "fork failed: test"})
        kept.settimeout(5)
        self.assertEqual(kept.recv(1), b"")  # the descriptor was closed
        kept.close()
        send_frame(ours, {"op": "dance"})
        self.assertIsNone(_zygote._refuse_one(theirs, "fork failed: test"))
        self.assertIn("expected `spawn`", recv_frame(ours)["message"])
        ours.shutdown(socket.SHUT_WR)
        self.assertEqual(_zygote._refuse_one(theirs, "fork failed: test"), _zygote._EOF)


class RunnerTest(unittest.TestCase):
    def test_success_value_and_context(self):
        execution = run({"flows/main.py": """
            from runeflow import workflow, context
            from helpers.text import shout
            @workflow(name="main", timeout=10)
            def main(who, times=1):
                return {"text": shout(who) * times, "id": context.execution_id,
                        "params": context.parameters, "file": __file__}
        """, "helpers/__init__.py": "", "helpers/text.py": """
            def shout(s):
                return s.upper()
        """}, parameters={"who": "hi", "times": 2}, execution_id="e-42")
        self.assertEqual(execution.status, "success", execution.error)
        self.assertEqual(execution.value, {
            "text": "HIHI", "id": "e-42", "params": {"who": "hi", "times": 2},
            "file": f"{ROOT}/flows/main.py"})

    def test_exception_reports_type_message_and_virtual_traceback(self):
        execution = run({"flows/main.py": """
            from helpers.errors import check
            def main():
                check(-1)
        """, "helpers/__init__.py": "", "helpers/errors.py": """
            class Negative(ValueError):
                class Deep(Exception):
                    pass
            def check(n):
                if n < 0:
                    raise Negative(f"{n} is negative")
        """})
        self.assertEqual(execution.status, "failed")
        error = execution.error
        self.assertEqual(error["type"], "helpers.errors.Negative")
        self.assertEqual(error["message"], "-1 is negative")
        tb = error["traceback"]
        self.assertTrue(tb.startswith("Traceback (most recent call last):\n"), tb)
        self.assertIn(f'File "{ROOT}/flows/main.py", line 3, in main\n    check(-1)', tb)
        self.assertIn(f'File "{ROOT}/helpers/errors.py", line 6, in check\n'
                      '    raise Negative(f"{n} is negative")', tb)
        self.assertNotIn("runeflow-shim", tb)
        self.assertNotIn("importlib", tb)

    def test_builtin_and_nested_type_names(self):
        builtin = run({"flows/main.py": "def main():\n    return {}['k']\n"})
        self.assertEqual((builtin.error["type"], builtin.error["message"]), ("KeyError", "'k'"))
        nested = run({"flows/main.py": """
            class Outer:
                class Inner(Exception):
                    pass
            def main():
                raise Outer.Inner("x")
        """})
        self.assertEqual(nested.error["type"], "flows.main.Outer.Inner")

    def test_error_at_import_of_the_workflow_module(self):
        execution = run({"flows/main.py": """
            import helpers.missing_thing
            def main():
                return 1
        """, "helpers/__init__.py": ""})
        self.assertEqual(execution.error["type"], "ModuleNotFoundError")
        self.assertEqual(execution.error["message"], "No module named 'helpers.missing_thing'")
        self.assertIn(f'File "{ROOT}/flows/main.py", line 1, in <module>', execution.error["traceback"])
        self.assertNotIn("frozen importlib", execution.error["traceback"])

    def test_syntax_error_in_the_workflow_module(self):
        execution = run({"flows/main.py": "def main(:\n    return 1\n"})
        self.assertEqual(execution.error["type"], "SyntaxError")
        tb = execution.error["traceback"]
        self.assertIn(f'File "{ROOT}/flows/main.py", line 1\n    def main(:\n', tb)
        self.assertNotIn("runeflow-shim", tb)

    def test_missing_function(self):
        execution = run({"flows/main.py": "def other():\n    pass\n"})
        self.assertEqual(execution.error["type"], "AttributeError")
        self.assertIn("has no attribute 'main'", execution.error["message"])

    def test_system_exit_and_keyboard_interrupt_fail(self):
        exit_ = run({"flows/main.py": "import sys\ndef main():\n    sys.exit(3)\n"})
        self.assertEqual((exit_.status, exit_.error["type"], exit_.error["message"]),
                         ("failed", "SystemExit", "3"))
        interrupt = run({"flows/main.py": "def main():\n    raise KeyboardInterrupt\n"})
        self.assertEqual((interrupt.status, interrupt.error["type"]), ("failed", "KeyboardInterrupt"))

    def test_unprintable_exception(self):
        execution = run({"flows/main.py": """
            class Bad(Exception):
                def __str__(self):
                    raise RuntimeError("no")
            def main():
                raise Bad()
        """})
        self.assertEqual(execution.error["type"], "flows.main.Bad")
        self.assertEqual(execution.error["message"], "<unprintable Bad>")

    def test_os_exit_in_user_code_means_the_child_died(self):
        execution = run({"flows/main.py": "import os\ndef main():\n    os._exit(3)\n"})
        self.assertEqual(execution.status, "died")

    def test_timeout_kills_the_group(self):
        started = time.monotonic()
        execution = run({"flows/main.py": "import time\ndef main():\n    time.sleep(60)\n"}, timeout=0.5)
        self.assertEqual(execution.status, "timeout")
        self.assertLess(time.monotonic() - started, 10)

    def test_result_not_serializable(self):
        cases = {
            "import datetime\ndef main():\n    return datetime.date(2024, 1, 2)\n": "datetime.date",
            "def main():\n    return float('nan')\n": "float",
            "def main():\n    return {1, 2}\n": "set",
            "def main():\n    x = []\n    x.append(x)\n    return x\n": "list",
        }
        for source, type_name in cases.items():
            with self.subTest(type_name):
                execution = run({"flows/main.py": source})
                self.assertEqual(execution.status, "failed")
                self.assertEqual(execution.error["type"], "ResultNotSerializable")
                self.assertIn(f"value of type {type_name} ", execution.error["message"])
        nested = run({"flows/main.py": "import datetime\ndef main():\n    return {'at': datetime.date(2024, 1, 2)}\n"})
        self.assertIn("Object of type date", nested.error["message"])

    def test_result_too_large(self):
        execution = run({"flows/main.py": "def main():\n    return 'x' * (17 * 1024 * 1024)\n"})
        self.assertEqual(execution.error["type"], "ResultTooLarge")

    def test_async_workflow(self):
        execution = run({"flows/main.py": """
            import asyncio
            from runeflow import workflow
            @workflow
            async def main(n):
                await asyncio.sleep(0.01)
                return n * 2
        """}, parameters={"n": 21})
        self.assertEqual(execution.value, 42)
        failing = run({"flows/main.py": "async def main():\n    raise ValueError('async boom')\n"})
        self.assertEqual((failing.error["type"], failing.error["message"]), ("ValueError", "async boom"))

    def test_workflow_loaded_by_path(self):
        execution = run({"flows/my-flow.py": """
            from helpers import VALUE
            def main():
                return [__name__, __file__, VALUE]
        """, "helpers/__init__.py": "VALUE = 7\n"}, path="flows/my-flow.py")
        self.assertEqual(execution.value, ["__runeflow_main__", f"{ROOT}/flows/my-flow.py", 7])

    def test_a_gated_run_waits_for_go(self):
        marker = tempfile.mktemp(prefix="rf-gate-")
        files = {"flows/main.py": f"""
            open({marker!r}, "w").close()  # at import: workflow code
            def main():
                return "ran"
        """}

        def go_later(sock):
            time.sleep(0.3)
            self.assertFalse(os.path.exists(marker), "workflow code ran before `go`")
            send_frame(sock, {"op": "go"})

        try:
            execution = run(files, gate=go_later)
            self.assertEqual((execution.status, execution.value), ("success", "ran"),
                             execution.error)
            self.assertTrue(os.path.exists(marker))
        finally:
            if os.path.exists(marker):
                os.unlink(marker)

    def test_a_gated_run_without_go_runs_nothing(self):
        marker = tempfile.mktemp(prefix="rf-gate-")
        files = {"flows/main.py": f"""
            open({marker!r}, "w").close()
            def main():
                return "ran"
        """}
        # The worker closes the socket instead (the row was not to run).
        execution = run(files, gate=lambda sock: sock.shutdown(socket.SHUT_WR))
        self.assertEqual(execution.status, "failed")
        self.assertIn("before `go`", execution.error["message"])
        self.assertFalse(os.path.exists(marker))
        # Anything but `go` is a protocol error, and runs nothing either.
        execution = run(files, gate=lambda sock: send_frame(sock, {"op": "find"}))
        self.assertIn("ProtocolError", execution.error["type"])
        self.assertIn("expected `go`", execution.error["message"])
        self.assertFalse(os.path.exists(marker))

    def test_bad_run_message_is_a_protocol_error(self):
        pid, sock = WORKER.spawn("bad")
        try:
            send_frame(sock, {"op": "run", "execution_id": "bad"})
            sock.settimeout(10)
            message = recv_frame(sock)
        finally:
            sock.close()
        self.assertEqual(message["op"], "result")
        self.assertEqual(message["status"], "failed")
        self.assertIn("ProtocolError", message["error"]["type"])


class ForkTest(unittest.TestCase):
    def test_processes_forked_by_a_workflow_keep_off_the_socket(self):
        execution = run({"flows/main.py": """
            import os
            def main():
                read, write = os.pipe()
                pid = os.fork()
                if pid == 0:
                    print("from the grandchild")
                    try:
                        import helpers
                        outcome = "imported"
                    except ImportError as exc:
                        outcome = type(exc).__name__
                    os.write(write, outcome.encode())
                    os._exit(0)
                os.close(write)
                outcome = os.read(read, 100).decode()
                os.waitpid(pid, 0)
                print("from the execution")
                import helpers
                return [outcome, helpers.VALUE]
        """, "helpers/__init__.py": "VALUE = 5\n"})
        self.assertEqual(execution.value, ["ImportError", 5], execution.error)
        self.assertEqual(execution.logs, "from the execution\n")

    def test_multiprocessing_fork_pool(self):
        execution = run({"flows/main.py": """
            import multiprocessing
            def square(x):
                return x * x
            def main():
                with multiprocessing.get_context("fork").Pool(2) as pool:
                    return pool.map(square, range(5))
        """})
        self.assertEqual(execution.value, [0, 1, 4, 9, 16], execution.error)


class LogsTest(unittest.TestCase):
    def test_stdout_stderr_and_logging_in_order(self):
        execution = run({"flows/main.py": """
            import logging, sys, warnings
            from runeflow import context
            def main():
                print("one")
                print("two", file=sys.stderr)
                logging.getLogger("app").warning("three %d", 3)
                logging.getLogger("app").info("not shown: root stays at WARNING")
                context.log.info("four")
                sys.stdout.buffer.write("five é\\n".encode())
                warnings.warn("six")
                return None
        """})
        self.assertEqual(execution.status, "success", execution.error)
        lines = execution.logs.splitlines()
        self.assertEqual(lines[:5], ["one", "two", "WARNING app: three 3",
                                     "INFO runeflow.execution: four", "five é"])
        self.assertIn(f"{ROOT}/flows/main.py:10: UserWarning: six", execution.logs)
        self.assertIn('warnings.warn("six")', execution.logs)
        self.assertNotIn("not shown", execution.logs)

    def test_uncaught_thread_error_shows_virtual_source(self):
        execution = run({"flows/main.py": """
            import threading
            def boom():
                raise ValueError("in thread")
            def main():
                t = threading.Thread(target=boom, name="worker-thread")
                t.start()
                t.join()
        """})
        self.assertIn("Exception in thread worker-thread:", execution.logs)
        self.assertIn('raise ValueError("in thread")', execution.logs)

    def test_small_output_is_batched(self):
        execution = run({"flows/main.py": """
            def main():
                for i in range(200):
                    print(i)
        """})
        self.assertEqual(execution.logs, "".join(f"{i}\n" for i in range(200)))
        self.assertLess(len(execution.log_frames), 20)  # not one per print

    def test_large_output_flushes_in_chunks(self):
        execution = run({"flows/main.py": """
            def main():
                for i in range(100):
                    print("x" * 999)
        """})
        self.assertEqual(execution.logs, ("x" * 999 + "\n") * 100)
        self.assertGreaterEqual(len(execution.log_frames), 20)
        self.assertTrue(all(len(f) < 8192 for f in execution.log_frames))

    def test_output_arrives_while_the_workflow_runs(self):
        execution = run({"flows/main.py": """
            import time
            def main():
                print("early")
                time.sleep(0.3)
                print("late")
                time.sleep(0.3)
        """})
        # "late" is sent by its own write (200 ms after the last send); the
        # newline print() writes next waits for the final flush.
        self.assertGreaterEqual(len(execution.log_frames), 2)
        self.assertTrue(execution.log_frames[0].startswith("early"))
        self.assertEqual(execution.log_frames[-1], "\n")
        self.assertEqual(execution.logs, "early\nlate\n")

    def test_truncation(self):
        execution = run({"flows/main.py": """
            def main():
                for i in range(100):
                    print("é" * 99)
                return "done"
        """}, max_log_bytes=1000)
        self.assertEqual(execution.value, "done")
        note = _output.TRUNCATION_NOTE
        self.assertTrue(execution.logs.endswith(note))
        self.assertEqual(execution.logs.count("truncated"), 1)
        kept = execution.logs[:-len(note)]
        self.assertEqual(len(kept.encode()), 999)  # cut on a character boundary
        self.assertTrue(("é" * 99 + "\n") * 5 in kept)


class PrefetchTest(unittest.TestCase):
    """Modules sent with `run` as code objects (worker/src/prefetch.rs)."""

    FILES = {
        "flows/main.py": """
            import inspect, traceback
            import h.tiny
            from h import boom
            def main():
                try:
                    boom.fail()
                except ValueError:
                    tb = traceback.format_exc()
                return [h.tiny.X, inspect.getsource(boom.fail), tb,
                        boom.__file__ == boom.__spec__.origin == boom.fail.__code__.co_filename]
        """,
        "h/tiny.py": "X = 1\n",
        "h/boom.py": "def fail():\n    raise ValueError('kaboom')  # the line\n",
    }

    def test_prefetched_modules_cost_no_find_and_source_comes_lazily(self):
        execution = run(self.FILES, prefetch=["flows", "flows.main", "h", "h.tiny", "h.boom"])
        self.assertEqual(execution.status, "success", execution.error)
        value, source, tb, same_file = execution.value
        self.assertEqual(value, 1)
        self.assertEqual(source, "def fail():\n    raise ValueError('kaboom')  # the line\n")
        self.assertIn("raise ValueError('kaboom')  # the line", tb)
        self.assertIn(f'File "{ROOT}/h/boom.py", line 2, in fail', tb)
        self.assertTrue(same_file)
        self.assertEqual(execution.finds(), [])
        reads = [r["path"] for r in execution.requests if r.get("op") == "read"]
        # Once per file, for inspect and the traceback's frames.
        self.assertEqual(sorted(reads), ["flows/main.py", "h/boom.py"])

    def test_without_prefetch_the_same_run_asks_for_each_module(self):
        execution = run(self.FILES)
        self.assertEqual(execution.status, "success", execution.error)
        self.assertEqual(execution.value[0], 1)
        self.assertEqual(execution.finds(), ["flows", "flows.main", "h", "h.tiny", "h.boom"])

    def test_a_prefetched_module_that_does_not_compile_raises_the_real_error(self):
        execution = run({"flows/main.py": "import h.bad\ndef main():\n    return 1\n",
                         "h/bad.py": "x = (\n"},
                        prefetch=["flows", "flows.main", "h", "h.bad"])
        self.assertEqual(execution.status, "failed")
        self.assertEqual(execution.error["type"], "SyntaxError")
        self.assertIn(f'File "{ROOT}/h/bad.py", line 1', execution.error["traceback"])
        self.assertEqual(execution.finds(), [])

    def test_a_reload_after_a_prefetch_asks_the_worker(self):
        execution = run({"flows/main.py": """
            import importlib
            import h.mod
            def main():
                first = h.mod.VALUE
                importlib.reload(h.mod)
                return [first, h.mod.VALUE]
        """, "h/mod.py": ["VALUE = 1\n", "VALUE = 2\n"]},
            prefetch=["flows", "flows.main", "h", "h.mod"])
        self.assertEqual(execution.value, [1, 2], execution.error)
        self.assertEqual(execution.finds(), ["h.mod"])

    def test_a_blob_that_does_not_match_its_entries_is_refused(self):
        pid, sock = WORKER.spawn("exec-bad-blob")
        try:
            send_frame(sock, {"op": "run", "execution_id": "x", "path": "a.py", "module": "a",
                              "function": "f", "parameters": {}, "top_level": ["a"],
                              "root": ROOT, "max_log_bytes": 1000,
                              "prefetch": [{"name": "a", "kind": "module", "path": "a.py",
                                            "code_len": 10}]})
            sock.sendall((3).to_bytes(4, "big") + b"abc")
            reply = recv_frame(sock)
        finally:
            sock.close()
            fake_worker._kill_group(pid)
        self.assertEqual(reply["status"], "failed")
        self.assertIn("prefetch blob", reply["error"]["message"])


class HookTest(unittest.TestCase):
    def test_misses_outside_the_workspace_cost_no_round_trip(self):
        execution = run({"flows/main.py": """
            import importlib.util
            def main():
                import colorsys, json, csv
                return [importlib.util.find_spec(n) is None for n in
                        ("nonexistent_xyz", "colorsys_missing", "six_missing", "csv")]
        """, "colorsys.py": "WHO = 'workspace'\n"})
        self.assertEqual(execution.value, [True, True, True, False])
        self.assertEqual(execution.finds(), ["flows", "flows.main"])

    def test_misses_inside_the_workspace_cost_one_round_trip(self):
        execution = run({"flows/main.py": """
            import importlib.util
            def main():
                return importlib.util.find_spec("flows.nothing") is None
        """})
        self.assertTrue(execution.value)
        self.assertEqual(execution.finds(), ["flows", "flows.main", "flows.nothing"])

    def test_stdlib_and_sdk_names_cannot_be_shadowed(self):
        execution = run({"flows/main.py": """
            def main():
                import colorsys, runeflow, email.utils
                return [hasattr(colorsys, "rgb_to_hsv"), runeflow.__file__,
                        hasattr(email.utils, "WHO")]
        """, "colorsys.py": "WHO = 'workspace'\n", "runeflow/__init__.py": "WHO = 'workspace'\n",
            "email/utils.py": "WHO = 'workspace'\n"})
        self.assertEqual(execution.value, [True, "<runeflow-shim>/runeflow/__init__.py", False])
        self.assertEqual(execution.finds(), ["flows", "flows.main"])

    def test_workspace_wins_over_site_packages(self):
        execution = run({"flows/main.py": """
            def main():
                import pip
                return getattr(pip, "WHO", None)
        """, "pip.py": "WHO = 'workspace'\n"})
        self.assertEqual(execution.value, "workspace")

    def test_preloaded_third_party_module_is_shadowed_too(self):
        with FakeWorker(preload=["pip"]) as worker:
            execution = worker.run({"flows/main.py": "import pip\ndef main():\n    return pip.WHO\n",
                                    "pip.py": "WHO = 'workspace'\n"}, "flows/main.py", "main")
        self.assertEqual(execution.value, "workspace", execution.error)

    def test_reload_after_an_edit_runs_the_new_code(self):
        execution = run({"flows/main.py": """
            import importlib
            def main():
                import helpers.mod as mod
                first = mod.VALUE
                importlib.reload(mod)
                second = mod.VALUE
                try:
                    importlib.reload(mod)
                except ModuleNotFoundError as exc:
                    gone = str(exc)
                return [first, second, gone]
        """, "helpers/__init__.py": "", "helpers/mod.py": ["VALUE = 1\n", "VALUE = 2\n", None]})
        self.assertEqual(execution.value, [1, 2, "spec not found for the module 'helpers.mod'"])
        self.assertEqual(execution.finds().count("helpers.mod"), 3)

    def test_traceback_after_reload_shows_the_new_source(self):
        execution = run({"flows/main.py": """
            import importlib, traceback
            def main():
                import mod
                importlib.reload(mod)
                try:
                    mod.f()
                except ValueError:
                    return traceback.format_exc()
        """, "mod.py": ["def f():\n    raise ValueError('old')\n",
                        "def f():\n    raise ValueError('new')\n"]})
        self.assertIn("raise ValueError('new')", execution.value)

    def test_sixteen_threads_importing_and_printing(self):
        files = {f"mods/m{i}.py": f"import time\ntime.sleep(0.05)\nVALUE = {i}\n" for i in range(16)}
        files["mods/__init__.py"] = ""
        files["flows/main.py"] = """
            import importlib, threading
            def main():
                out = {}
                def load(i):
                    for j in range(20):
                        print(f"thread {i} line {j}")
                    out[i] = importlib.import_module(f"mods.m{i}").VALUE
                threads = [threading.Thread(target=load, args=(i,)) for i in range(16)]
                for t in threads: t.start()
                for t in threads: t.join(30)
                return sorted(out.values())
        """
        execution = run(files)
        self.assertEqual(execution.value, list(range(16)), execution.error)
        # print() writes text and newline separately: lines may interleave, as on disk.
        for i in range(16):
            self.assertIn(f"thread {i} line 19", execution.logs)
        self.assertEqual(execution.logs.count("thread "), 16 * 20)

    def test_latin1_cookie_on_text(self):
        execution = run({"flows/main.py": """
            import cookie
            def main():
                return cookie.TEXT
        """, "cookie.py": "# -*- coding: latin-1 -*-\nTEXT = 'café ✓'\n"})
        self.assertEqual(execution.value, "café ✓")

    def test_bom_and_crlf_sources(self):
        execution = run({"flows/main.py": """
            import inspect, crlf
            def main():
                return [crlf.f(), inspect.getsource(crlf.f)]
        """, "crlf.py": "\ufeffdef f():\r\n    return 'ok'\r\n"})
        self.assertEqual(execution.value, ["ok", "def f():\n    return 'ok'\n"])

    def test_nothing_written_under_a_real_root(self):
        with tempfile.TemporaryDirectory() as root, FakeWorker(root=root) as worker:
            execution = worker.run({
                "flows/main.py": "import pkg.sub\ndef main():\n    return pkg.sub.__file__\n",
                "pkg/__init__.py": "", "pkg/sub.py": ""}, "flows/main.py", "main")
            self.assertEqual(execution.value, f"{root}/pkg/sub.py", execution.error)
            self.assertEqual(os.listdir(root), [])


class FidelityTest(unittest.TestCase):
    """Every fidelity check returns the same dict through the shim as on disk."""

    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.files = load_tree(os.path.join(FIDELITY, "workspace"))
        listing = cls.disk("--list")
        cls.names = listing["checks"]

    @staticmethod
    def disk(name):
        done = subprocess.run([sys.executable, os.path.join(FIDELITY, "run_on_disk.py"), name],
                              capture_output=True, text=True, timeout=60)
        if done.returncode:
            raise AssertionError(f"disk run of {name} failed:\n{done.stderr}")
        return json.loads(done.stdout)

    def test_all_checklist_items_are_covered(self):
        for n in range(1, 18):
            self.assertIn(f"item{n:02d}", self.names)

    def test_virtual_equals_disk(self):
        for name in self.names:
            with self.subTest(name):
                disk = self.disk(name)
                execution = WORKER.run(self.files, "fidelity_checks.py", "check", {"name": name})
                self.assertEqual(execution.status, "success", execution.error)
                self.assertEqual(execution.value, disk)
                failed = [k for k, ok in disk["expect"].items() if ok is not True]
                self.assertEqual(failed, [], f"{name}: expectations not met")

    def test_workspace_has_no_bytecode(self):
        for folder, dirs, _files in os.walk(os.path.join(FIDELITY, "workspace")):
            self.assertNotIn("__pycache__", dirs, folder)


class ProtocolUnitTest(unittest.TestCase):
    def pair(self):
        a, b = socket.socketpair()
        self.addCleanup(a.close)
        self.addCleanup(b.close)
        return a, b

    def test_round_trip_and_clean_eof(self):
        a, b = self.pair()
        _protocol.send(a, {"op": "find", "name": "é"})
        a.shutdown(socket.SHUT_WR)
        self.assertEqual(_protocol.recv(b), {"op": "find", "name": "é"})
        self.assertIsNone(_protocol.recv(b))

    def test_limits_and_malformed_frames(self):
        a, b = self.pair()
        a.sendall((10).to_bytes(4, "big") + b"x" * 10)
        with self.assertRaisesRegex(_protocol.ProtocolError, "over the limit"):
            _protocol.recv(b, max_bytes=5)
        a, b = self.pair()
        a.sendall((2).to_bytes(4, "big") + b"{x")
        with self.assertRaisesRegex(_protocol.ProtocolError, "malformed"):
            _protocol.recv(b)
        a, b = self.pair()
        a.sendall((9).to_bytes(4, "big") + b"{}")
        a.shutdown(socket.SHUT_WR)
        with self.assertRaisesRegex(_protocol.ProtocolError, "middle of a frame"):
            _protocol.recv(b)
        with self.assertRaises(_protocol.ProtocolError):
            _protocol.encode({"big": "x" * (_protocol.MAX_FRAME_BYTES + 1)})
        with self.assertRaises(ValueError):
            _protocol.encode({"nan": float("nan")})

    def test_descriptor_travels_with_the_first_byte(self):
        a, b = self.pair()
        x, y = socket.socketpair()
        send_frame(a, {"op": "spawn"}, fds=[y.fileno()])
        message, fds = _protocol.recv_with_fds(b)
        self.assertEqual(message, {"op": "spawn"})
        self.assertEqual(len(fds), 1)
        os.write(fds[0], b"!")
        self.assertEqual(x.recv(1), b"!")
        for fd in fds:
            os.close(fd)
        x.close()
        y.close()


class FakeChannel:
    def __init__(self):
        import threading
        self.lock = threading.RLock()
        self.sent = []

    def is_ours(self):
        return True

    def send(self, message):
        self.sent.append(message["text"])


class LogStreamUnitTest(unittest.TestCase):
    def make(self, max_bytes=1 << 20):
        self.now = 0.0
        self.channel = FakeChannel()
        return _output.LogStream(self.channel, max_bytes, clock=lambda: self.now)

    def test_flushes_on_size_time_and_close(self):
        stream = self.make()
        stream.write("a" * 100)
        self.assertEqual(self.channel.sent, [])
        stream.write("b" * 4000)
        self.assertEqual(self.channel.sent, ["a" * 100 + "b" * 4000])
        stream.write("c")
        self.now = 0.25
        stream.write("d")
        self.assertEqual(self.channel.sent[-1], "cd")
        stream.write("e")
        stream.close()
        stream.write("dropped")
        self.assertEqual(self.channel.sent[-1], "e")

    def test_truncates_once(self):
        stream = self.make(max_bytes=5)
        stream.write("abc")
        stream.flush()
        stream.write("déf")
        stream.flush()
        stream.write("more")
        stream.close()
        self.assertEqual("".join(self.channel.sent), "abcd" + _output.TRUNCATION_NOTE)


class SdkTest(unittest.TestCase):
    def test_decorators_keep_the_function(self):
        def f():
            return 1
        self.assertIs(runeflow.workflow(f), f)
        self.assertIs(runeflow.workflow()(f), f)
        self.assertIs(runeflow.data_provider(name="x", timeout=3)(f), f)
        self.assertEqual(f.__runeflow__, {"kind": "data_provider", "name": "x",
                                          "description": None, "timeout": 3,
                                          "cache_ttl": None})
        self.assertEqual(runeflow.workflow("named")(f).__runeflow__["name"], "named")

    def test_decorators_take_the_settings_and_bifrost_spellings(self):
        def f():
            return 1
        tagged = runeflow.workflow(
            schedule="0 9 * * *", timezone="Europe/Paris", catch_up=False,
            retries=3, retry_backoff=2.0, retry_on=["TimeoutError"],
            endpoint=True, max_concurrency=2, timeout=30,
        )(f)
        self.assertIs(tagged, f)
        self.assertEqual(f.__runeflow__["schedule"], "0 9 * * *")
        self.assertEqual(f.__runeflow__["retry_on"], ["TimeoutError"])
        self.assertEqual(f.__runeflow__["max_concurrency"], 2)
        runeflow.workflow(timeout_seconds=5, endpoint_enabled=True)(f)
        self.assertEqual((f.__runeflow__["timeout"], f.__runeflow__["endpoint"]), (5, True))
        runeflow.data_provider(cache_ttl_seconds=60, timeout_seconds=2)(f)
        self.assertEqual((f.__runeflow__["cache_ttl"], f.__runeflow__["timeout"]), (60, 2))
        self.assertEqual(runeflow.data_provider(cache_ttl=0)(f).__runeflow__["cache_ttl"], 0)
        with self.assertRaises(TypeError):
            runeflow.workflow(schedual="0 9 * * *")(f)

    def test_config_and_secrets_are_asked_for_when_read(self):
        files = {"flows/keys.py": textwrap.dedent("""
            import asyncio
            from runeflow import context

            def sync_read():
                missing = None
                try:
                    context.config["NOPE"]
                except KeyError as exc:
                    missing = str(exc)
                try:
                    context.config["TOKEN"]
                except KeyError as exc:
                    wrong_kind = str(exc)
                return {"url": context.config["URL"], "token": context.secret("TOKEN"),
                        "missing": missing, "wrong_kind": wrong_kind,
                        "has": "URL" in context.config, "default": context.config.get("NOPE", 7)}

            async def async_read():
                await asyncio.sleep(0)
                return context.secret("TOKEN") + "|" + str(context.config["LIMIT"])

            def missing_secret():
                return context.secret("ABSENT")
        """)}
        config = {"URL": (False, "https://x"), "LIMIT": (False, 3), "TOKEN": (True, "t0k")}
        sync = WORKER.run(files, "flows/keys.py", "sync_read", config=config)
        self.assertEqual(sync.status, "success", sync.error)
        self.assertEqual(sync.value["url"], "https://x")
        self.assertEqual(sync.value["token"], "t0k")
        self.assertEqual(sync.value["missing"], "'NOPE'")
        self.assertIn("is a secret", sync.value["wrong_kind"])
        self.assertEqual((sync.value["has"], sync.value["default"]), (True, 7))
        asked = [(r["op"], r["key"]) for r in sync.requests if r["op"] in ("config", "secret")]
        self.assertEqual(asked[:3], [("config", "NOPE"), ("config", "TOKEN"), ("config", "URL")])
        done = WORKER.run(files, "flows/keys.py", "async_read", config=config)
        self.assertEqual((done.status, done.value), ("success", "t0k|3"), done.error)
        absent = WORKER.run(files, "flows/keys.py", "missing_secret", config=config)
        self.assertEqual(absent.status, "failed")
        self.assertEqual((absent.error["type"], absent.error["message"]), ("KeyError", "'ABSENT'"))

    def test_context_outside_an_execution(self):
        self.assertIsInstance(runeflow.context, runeflow.Context)
        self.assertIsNone(runeflow.context.execution_id)
        self.assertEqual(runeflow.context.parameters, {})
        self.assertEqual(runeflow.context.log.name, "runeflow.execution")
        with self.assertRaises(RuntimeError):
            runeflow.context.secret("X")
        with self.assertRaises(RuntimeError):
            runeflow.context.config["X"]

    def test_shadowing_rule(self):
        workspace = _hook.Workspace(None, "/w", ["six", "json", "runeflow", "flows"])
        self.assertTrue(workspace.owns("six"))
        self.assertTrue(workspace.owns("flows"))
        self.assertFalse(workspace.owns("json"))
        self.assertFalse(workspace.owns("runeflow"))
        self.assertFalse(workspace.owns("requests"))
        self.assertEqual(workspace.relpath("/w/a/../b"), "b")
        self.assertIsNone(workspace.relpath("/wx/a"))
        self.assertEqual(workspace.relpath("/w"), "")


if __name__ == "__main__":
    unittest.main()
