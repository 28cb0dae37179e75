"""Import-hook fidelity checks: one per line of the DESIGN.md checklist.

The same file runs through the worker (as the workflow ``check``) and from
disk (``python_shim/fidelity/run_on_disk.py NAME``, with this folder as
``sys.path[0]``). Each check imports only what it needs, in a fresh process,
and returns a JSON-able dict in which the workspace root is written
``<ROOT>``; a virtual run must return exactly what the disk run returns.
Every result also has ``expect``: named facts that must all be true.

``check("list")`` returns the names of all checks.
"""

import importlib
import importlib.util
import io
import json
import linecache
import os
import sys
import traceback

from runeflow import workflow

ROOT = os.path.dirname(os.path.abspath(__file__))
CHECKS = {}


@workflow(name="fidelity-check", description="Runs one import-hook fidelity check.")
def check(name: str) -> dict:
    """Runs the check called `name` and returns its portable observations."""
    if name == "list":
        return {"checks": sorted(CHECKS)}
    return portable({"check": name, **CHECKS[name]()})


def _check(function):
    CHECKS[function.__name__] = function
    return function


def portable(value):
    """JSON-able copy of `value` with the workspace root written <ROOT>."""
    if isinstance(value, str):
        return value.replace(ROOT, "<ROOT>")
    if isinstance(value, dict):
        return {str(k): portable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [portable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(portable(v) for v in value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return portable(repr(value))


def _error(exc):
    return {"type": type(exc).__name__, "message": str(exc)}


def _root_frames(tb):
    """(file, line, function, source) of the traceback's workspace frames."""
    return [(f.filename, f.lineno, f.name, f.line)
            for f in traceback.extract_tb(tb) if f.filename.startswith(ROOT + os.sep)]


@_check
def item01():
    """`import a.b.c` binds a.b and a.b.c on their parents."""
    import chain.b.c
    from chain.b import c as c_from
    import chain.b.c as c_as
    modules = sys.modules
    return {
        "expect": {
            "top_name_bound": chain is modules["chain"],
            "b_bound_on_chain": chain.b is modules["chain.b"],
            "c_bound_on_b": chain.b.c is modules["chain.b.c"],
            "from_import": c_from is modules["chain.b.c"],
            "import_as": c_as is modules["chain.b.c"],
        },
        "order": chain.ORDER,
        "chain_names": sorted(k for k in vars(chain) if not k.startswith("__")),
        "b_names": sorted(k for k in vars(chain.b) if not k.startswith("__")),
        "value": chain.b.c.VALUE,
    }


@_check
def item02():
    """`from . import x`, `from .. import y`, `from ..x import X`; __package__."""
    import rel
    import rel.sub.leaf as leaf
    from rel import sub
    try:
        import rel.sub.beyond  # noqa: F401
        beyond = None
    except ImportError as exc:
        beyond = _error(exc)
    names = ["rel", "rel.x", "rel.y", "rel.sub", "rel.sub.sib", "rel.sub.leaf"]
    return {
        "expect": {
            "init_dot": rel.x is sys.modules["rel.x"],
            "init_dot_x": rel.X is rel.x.X,
            "sub_init_dotdot": sub.y is sys.modules["rel.y"],
            "sub_init_dotdot_x": sub.XFromSub is rel.x.X,
            "leaf_dot": leaf.sib is sys.modules["rel.sub.sib"],
            "leaf_dotdot": leaf.y is sys.modules["rel.y"],
            "leaf_dotdot_x": leaf.X is rel.x.X,
            "import_module_relative": importlib.import_module(".sib", "rel.sub") is leaf.sib,
            "beyond_top_level_fails": beyond is not None,
        },
        "package_at_import": {n: sys.modules[n].PACKAGE for n in names if hasattr(sys.modules[n], "PACKAGE")},
        "dunder_package": {n: sys.modules[n].__package__ for n in names},
        "spec_parent": {n: sys.modules[n].__spec__.parent for n in names},
        "beyond": beyond,
        "beyond_in_sys_modules": "rel.sub.beyond" in sys.modules,
    }


def _module_facts(module):
    spec = module.__spec__
    locations = spec.submodule_search_locations
    return {
        "file": module.__file__,
        "origin": spec.origin,
        "cached": getattr(module, "__cached__", "absent"),
        "has_location": spec.has_location,
        "parent": spec.parent,
        "package": module.__package__,
        "has_path": hasattr(module, "__path__"),
        "path": list(module.__path__) if hasattr(module, "__path__") else None,
        "search_locations": None if locations is None else list(locations),
        "loader_filename": module.__loader__.get_filename(module.__name__),
        "loader_is_package": module.__loader__.is_package(module.__name__),
        "repr": repr(module),
    }


@_check
def item03():
    """__file__ == __spec__.origin == co_filename, absolute; __path__ on packages only."""
    import layout
    import layout.plain as plain
    code_files = [layout.in_package.__code__.co_filename, plain.func.__code__.co_filename,
                  plain.Thing.method.__code__.co_filename]
    return {
        "expect": {
            "package_file_origin_code": layout.__file__ == layout.__spec__.origin == code_files[0],
            "module_file_origin_code": plain.__file__ == plain.__spec__.origin == code_files[1] == code_files[2],
            "absolute": os.path.isabs(layout.__file__) and os.path.isabs(plain.__file__),
            "under_root": plain.__file__.startswith(ROOT + os.sep),
            "package_has_path": hasattr(layout, "__path__"),
            "module_has_no_path": not hasattr(plain, "__path__"),
        },
        "package": _module_facts(layout),
        "module": _module_facts(plain),
        "code_files": code_files,
    }


def _captured_stderr(action):
    """What `action` writes to sys.stderr."""
    report = io.StringIO()
    saved, sys.stderr = sys.stderr, report
    try:
        action()
    finally:
        sys.stderr = saved
    return report.getvalue()


def _thread_report(function):
    import threading
    thread = threading.Thread(target=function, args=(1,), name="raiser")

    def run():
        thread.start()
        thread.join()

    return _captured_stderr(run)


@_check
def item04():
    """Tracebacks and uncaught-error reports show the virtual source lines."""
    import tb_mod
    try:
        tb_mod.outer(1)
    except KeyError as exc:
        formatted = traceback.format_exc()
        hook_report = _captured_stderr(lambda: sys.excepthook(*sys.exc_info()))
        frames = _root_frames(exc.__traceback__)
    thread_report = _thread_report(tb_mod.outer)
    return {
        "expect": {
            "source_line_shown": 'raise KeyError("missing: %d" % values["n"])' in formatted,
            "caller_line_shown": "return middle(n + 1)" in formatted,
            "excepthook_same_text": hook_report == formatted,
            "thread_report_shows_source": "return inner(values)" in thread_report,
        },
        "format_exc": formatted,
        "thread_report": thread_report,
        "frames": frames,
        "getline": linecache.getline(tb_mod.__file__, 13),
    }


@_check
def item05():
    """inspect.getsource on a function, a class, a method and the module."""
    import inspect

    import src_mod
    module_source = inspect.getsource(src_mod)
    return {
        "expect": {
            "module_matches_loader": module_source == src_mod.__loader__.get_source("src_mod"),
            "function_found": inspect.getsource(src_mod.plain).startswith("def plain(a, b=2):"),
            "class_found": inspect.getsource(src_mod.Shape).startswith("class Shape:"),
        },
        "function": inspect.getsource(src_mod.plain),
        "class": inspect.getsource(src_mod.Shape),
        "method": inspect.getsource(src_mod.Shape.area),
        "decorated": inspect.getsource(src_mod.decorated),
        "lambda": inspect.getsource(src_mod.square),
        "module": module_source,
        "class_lines_start": inspect.getsourcelines(src_mod.Shape)[1],
        "sourcefile": inspect.getsourcefile(src_mod.plain),
        "getfile": inspect.getfile(src_mod.Shape),
        "doc": inspect.getdoc(src_mod.plain),
        "signature": str(inspect.signature(src_mod.plain)),
        "getmodule": inspect.getmodule(src_mod.Shape) is src_mod,
    }


def _syntax_error(name):
    try:
        importlib.import_module(name)
    except SyntaxError as exc:
        return {
            "type": type(exc).__name__, "msg": exc.msg, "filename": exc.filename,
            "lineno": exc.lineno, "offset": exc.offset, "text": exc.text,
            "end_lineno": exc.end_lineno, "end_offset": exc.end_offset,
            "report": traceback.format_exception_only(exc),
            "in_sys_modules": name in sys.modules,
        }
    return None


@_check
def item06():
    """SyntaxError names the virtual file, line and text; no half module is left."""
    first = _syntax_error("bad_syntax")
    second = _syntax_error("bad_syntax")
    nested = _syntax_error("badpkg.broken")
    import badpkg
    return {
        "expect": {
            "raised": first is not None and nested is not None,
            "names_file": first is not None and first["filename"] == os.path.join(ROOT, "bad_syntax.py"),
            "not_left_in_sys_modules": not first["in_sys_modules"] and not nested["in_sys_modules"],
            "raises_again": first == second,
            "parent_package_kept": "badpkg" in sys.modules and not hasattr(badpkg, "broken"),
        },
        "module": first,
        "submodule": nested,
    }


@_check
def item07():
    """An exception raised while a module executes propagates unchanged."""
    import fixture_errors
    caught = []
    for name in ("raises_at_import", "nested_raiser"):
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - we look at exactly what came out
            caught.append(exc)
    first, nested = caught
    return {
        "expect": {
            "same_class": type(first) is fixture_errors.ImportTimeError,
            "nested_same_class": type(nested) is fixture_errors.ImportTimeError,
            "not_wrapped": not isinstance(first, ImportError) and first.__cause__ is None,
            "args_kept": first.args == ("boom at import", 42),
            "not_left_in_sys_modules": "raises_at_import" not in sys.modules
            and "nested_raiser" not in sys.modules,
            "ran_twice": fixture_errors.ATTEMPTS == ["raises_at_import", "raises_at_import"],
        },
        "report": traceback.format_exception_only(first),
        "frames": _root_frames(first.__traceback__),
        "nested_frames": _root_frames(nested.__traceback__),
    }


def _import_error(name):
    try:
        importlib.import_module(name)
    except ImportError as exc:
        return {**_error(exc), "name": exc.name, "path": exc.path}
    return None


@_check
def item08():
    """Circular imports behave as on disk."""
    import cyc_a
    import cyc_b
    import cycpkg
    partial_a = _import_error("pc_a")
    partial_b = _import_error("pc_b")
    return {
        "expect": {
            "cycle_works": cyc_a.b_value() == "b" and cyc_b.a_value() == "a",
            "partial_module_seen": cyc_b.SAW_A_AT_IMPORT is False,
            "package_cycle_works": cycpkg.one.two.one is cycpkg.one,
            "partial_error": partial_a is not None
            and "partially initialized module" in partial_a["message"],
            "failed_cycle_removed": "pc_a" not in sys.modules and "pc_b" not in sys.modules,
        },
        "from_import_cycle": partial_a,
        "from_import_cycle_other_way": partial_b,
    }


def _namespace_facts(module):
    return {
        "file": getattr(module, "__file__", "absent"),
        "cached": getattr(module, "__cached__", "absent"),
        "origin": module.__spec__.origin,
        "has_location": module.__spec__.has_location,
        "path": list(module.__path__),
        "path_len": len(module.__path__),
        "path_type": type(module.__path__).__name__,
        "loader_type": type(module.__loader__).__name__,
        "package": module.__package__,
    }


@_check
def item09():
    """Namespace packages: __file__ None, iterable __path__."""
    import pkgutil

    import layout.nsub.leaf
    import nsp.deeper.leaf
    import nsp.inner
    return {
        "expect": {
            "file_none": nsp.__file__ is None and nsp.deeper.__file__ is None
            and layout.nsub.__file__ is None,
            "path_iterable": list(iter(nsp.__path__)) == [os.path.join(ROOT, "nsp")],
            "submodules_load": nsp.inner.WHERE == "nsp.inner" and nsp.deeper.leaf.WHERE == "nsp.deeper.leaf",
        },
        "top": _namespace_facts(nsp),
        "nested": _namespace_facts(nsp.deeper),
        "in_regular_package": _namespace_facts(layout.nsub),
        "inner_file": nsp.inner.__file__,
        "iter_modules": [(m.name, m.ispkg) for m in pkgutil.iter_modules(nsp.__path__)],
    }


@_check
def item10():
    """Shadowing: stdlib names resolve normally; site-packages-like names go to the workspace."""
    import runpy

    import six
    return {
        "expect": {
            "stdlib_wins": hasattr(runpy, "run_path") and not hasattr(runpy, "WHO"),
            "workspace_wins_over_site_packages": getattr(six, "WHO", None) == "workspace",
        },
        "six_file": six.__file__,
        "six_spec_origin": importlib.util.find_spec("six").origin,
        "runpy_from_root": (getattr(runpy, "__file__", None) or "").startswith(ROOT),
    }


def _find_spec(name):
    try:
        spec = importlib.util.find_spec(name)
    except Exception as exc:  # noqa: BLE001
        return {"raised": _error(exc)}
    if spec is None:
        return None
    locations = spec.submodule_search_locations
    return {"name": spec.name, "origin": spec.origin,
            "locations": None if locations is None else list(locations)}


@_check
def item11():
    """find_spec returns None for missing names without raising."""
    names = ["definitely_not_a_module_xyz", "chain", "chain.missing", "chain.b.c",
             "nope_pkg_xyz.sub", "nsp", "bad_syntax", "raises_at_import"]
    specs = {name: _find_spec(name) for name in names}
    return {
        "expect": {
            "missing_top_is_none": specs["definitely_not_a_module_xyz"] is None,
            "missing_sub_is_none": specs["chain.missing"] is None,
            "found": specs["chain"] is not None and specs["chain.b.c"] is not None,
            "nothing_executed_by_find": "bad_syntax" not in sys.modules
            and "raises_at_import" not in sys.modules,
        },
        "specs": specs,
        "parent_imported": "chain" in sys.modules,
    }


@_check
def item12():
    """importlib.reload runs the module again; a vanished module fails to reload."""
    import types

    import layout
    import reload_counter
    import reloadable
    before = reloadable.stamp
    again = importlib.reload(reloadable)
    vanished = {}
    for name in ("layout.vanished", "vanished_top_xyz"):
        sys.modules[name] = types.ModuleType(name)
        try:
            importlib.reload(sys.modules[name])
        except ImportError as exc:
            vanished[name] = {**_error(exc), "name": exc.name}
        finally:
            sys.modules.pop(name, None)
    return {
        "expect": {
            "same_object": again is reloadable,
            "ran_again": reloadable.LOADS == 2 and reload_counter.COUNT == [2],
            "new_functions": reloadable.stamp is not before,
            "package_reloads": importlib.reload(layout) is layout,
            "vanished_fails": all(v["type"] == "ModuleNotFoundError" for v in vanished.values()),
        },
        "loads": reloadable.LOADS,
        "vanished": vanished,
    }


@_check
def item13():
    """pkgutil.iter_modules, pkgutil.get_data and importlib.resources on a package."""
    import importlib.resources as resources
    import pkgutil
    import warnings

    import datapkg
    files = resources.files("datapkg")
    data = files / "data.json"
    failures = {}
    for label, action in (
        ("get_data_missing", lambda: pkgutil.get_data("datapkg", "missing.json")),
        ("files_missing", lambda: (files / "missing.txt").read_text(encoding="utf-8")),
        ("files_of_module", lambda: resources.files("datapkg.alpha")),
    ):
        try:
            action()
            failures[label] = None
        except (OSError, TypeError) as exc:
            failures[label] = _error(exc)
    with resources.as_file(data) as real:
        as_file_text = real.read_text(encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        legacy = resources.read_text("datapkg", "notes.txt")
    with (files / "notes.txt").open("r", encoding="utf-8") as handle:
        first_line = handle.readline()
    with data.open("rb") as handle:
        first_bytes = handle.read(10).decode()
    return {
        "expect": {
            "get_data": json.loads(pkgutil.get_data("datapkg", "data.json"))["answer"] == 42,
            "read_text": json.loads(data.read_text(encoding="utf-8"))["name"] == "runeflow",
            "iter_modules": [m.name for m in pkgutil.iter_modules(datapkg.__path__)] == ["alpha", "beta"],
        },
        "iter_modules": [(m.name, m.ispkg) for m in pkgutil.iter_modules(datapkg.__path__)],
        "iter_modules_prefixed": [m.name for m in pkgutil.iter_modules(datapkg.__path__, "datapkg.")],
        "walk_packages": [m.name for m in pkgutil.walk_packages(datapkg.__path__, "datapkg.")],
        "get_data": pkgutil.get_data("datapkg", "data.json").decode(),
        "get_data_nested": pkgutil.get_data("datapkg", "nsdir/only.txt").decode(),
        "files": str(files),
        "data": str(data),
        "name": data.name,
        "read_bytes_len": len(data.read_bytes()),
        "notes": (files / "notes.txt").read_text(encoding="utf-8"),
        "legacy_read_text": legacy,
        "is_file": [data.is_file(), (files / "beta").is_file(), (files / "missing").is_file()],
        "is_dir": [data.is_dir(), (files / "beta").is_dir(), (files / "missing").is_dir()],
        "listing": sorted(p.name for p in files.iterdir() if p.name != "__pycache__"),
        "joinpath_many": files.joinpath("nsdir", "only.txt").read_text(encoding="utf-8"),
        "open_text": first_line,
        "open_binary": first_bytes,
        "as_file": as_file_text,
        "failures": failures,
    }


@_check
def item14():
    """PEP 263 coding cookies decode."""
    import inspect

    import cookie_latin1
    import cookie_utf8
    return {
        "expect": {
            "utf8_text": cookie_utf8.TEXT == "caf\u00e9 \u2713 na\u00efve",
            "latin1_text": cookie_latin1.TEXT == "caf\u00e9",
        },
        "text": cookie_utf8.TEXT,
        "greet": cookie_utf8.greet(),
        "doc": cookie_utf8.__doc__,
        "source": inspect.getsource(cookie_utf8.greet),
        "first_lines": [linecache.getline(cookie_utf8.__file__, n) for n in (1, 2, 3)],
        "latin1": cookie_latin1.TEXT,
    }


@_check
def item15():
    """16 threads importing one module execute it once, without deadlock."""
    import threading

    import thread_counter
    count = 16
    barrier = threading.Barrier(count)
    modules, errors = [None] * count, []

    def load(index):
        barrier.wait()
        try:
            modules[index] = importlib.import_module("slow_import")
        except BaseException as exc:  # noqa: BLE001
            errors.append(repr(exc))

    threads = [threading.Thread(target=load, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return {
        "expect": {
            "all_finished": not any(t.is_alive() for t in threads),
            "no_errors": errors == [],
            "executed_once": thread_counter.EXECUTIONS == [1],
            "same_module": all(m is sys.modules.get("slow_import") for m in modules),
        },
        "errors": errors,
        "value": getattr(sys.modules.get("slow_import"), "VALUE", None),
    }


@_check
def item16():
    """Nothing is written to a __pycache__."""
    import datapkg.beta.gamma
    import doc_mod
    import layout.plain
    import nsp.inner
    modules = [layout, layout.plain, datapkg, datapkg.beta.gamma, doc_mod, nsp.inner]
    folders = sorted({os.path.dirname(m.__file__) for m in modules})
    written = []
    for folder, _dirs, names in os.walk(ROOT):
        written += [os.path.join(folder, n) for n in names if n.endswith((".pyc", ".pyo"))]
    return {
        "expect": {
            "no_bytecode_written": written == [],
            "no_pycache_folders": not any(os.path.isdir(os.path.join(f, "__pycache__")) for f in folders),
        },
        "dont_write_bytecode": sys.dont_write_bytecode,
        "cached": [getattr(m, "__cached__", None) for m in modules],
        "cached_exists": [os.path.exists(m.__cached__) for m in modules],
    }


def _unittest_outcome(suite):
    import unittest
    result = unittest.TestResult()
    suite.run(result)
    return {
        "run": result.testsRun,
        "failures": sorted((t.id(), text) for t, text in result.failures),
        "errors": sorted((t.id(), text) for t, text in result.errors),
        "skipped": sorted((t.id(), reason) for t, reason in result.skipped),
    }


@_check
def item17():
    """doctest.DocTestSuite(module) and unittest loading by name behave as on disk."""
    import contextlib
    import doctest
    import unittest

    import doc_mod
    suite = doctest.DocTestSuite(doc_mod)
    doc = _unittest_outcome(suite)
    # The doctest failure text quotes doctest.py's own frame: keep the message only.
    doc["failures"] = [(tid, text.split("AssertionError: ", 1)[-1]) for tid, text in doc["failures"]]
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        testmod = doctest.testmod(doc_mod)
    loader = unittest.defaultTestLoader
    sample = _unittest_outcome(loader.loadTestsFromName("tests.test_sample"))
    one = loader.loadTestsFromName("tests.test_sample.SampleTest.test_ok")
    return {
        "expect": {
            "doctests_found": doc["run"] == 5,
            "doctest_failure_located": any('doc_mod.py", line' in text for _, text in doc["failures"]),
            "unittest_loaded": sample["run"] == 4 and one.countTestCases() == 1,
        },
        "doctest_ids": sorted(t.id() for t in suite),
        "doctest": doc,
        "testmod": [testmod.failed, testmod.attempted],
        "testmod_report": printed.getvalue(),
        "unittest": sample,
    }


@_check
def extra_sdk():
    """The SDK decorators keep functions callable and their source visible."""
    import inspect

    import runeflow
    from runeflow import data_provider

    @workflow
    def bare():
        return 1

    @workflow()
    def called():
        return 2

    @data_provider(name="choices", timeout=5)
    def provider():
        return [3]

    return {
        "expect": {
            "callable": (bare(), called(), provider()) == (1, 2, [3]),
            "source_visible": inspect.getsource(check).startswith("@workflow("),
            "context_type": isinstance(runeflow.context, runeflow.Context),
        },
        "tags": [bare.__runeflow__, called.__runeflow__, provider.__runeflow__, check.__runeflow__],
        "check_source_first_line": inspect.getsource(check).splitlines()[0],
        "context_logger": runeflow.context.log.name,
    }


@_check
def extra_pickle():
    """Workspace classes pickle, copy and introspect like disk ones."""
    import copy
    import dataclasses
    import pickle

    from layout.plain import Point
    point = Point(1, 2)
    return {
        "expect": {
            "pickle_round_trip": pickle.loads(pickle.dumps(point)) == point,
            "deepcopy": copy.deepcopy(point) == point,
        },
        "repr": repr(point),
        "fields": [f.name for f in dataclasses.fields(Point)],
        "module": Point.__module__,
        "qualname": Point.__qualname__,
    }


@_check
def extra_warnings():
    """A warning's report shows the workspace file, line and source line."""
    import warnings

    import warn_mod
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warn_mod.old()
    warning = caught[0]
    text = warnings.formatwarning(warning.message, warning.category, warning.filename, warning.lineno)
    return {
        "expect": {"source_line_shown": "warnings.warn(" in text},
        "filename": warning.filename,
        "lineno": warning.lineno,
        "formatted": text,
    }


@_check
def extra_future():
    """A module's own `from __future__` import applies (and ours does not leak in)."""
    import typing

    import future_mod
    return {
        "expect": {
            "string_annotations": future_mod.Pair.__annotations__["left"] == "int",
            "no_leak": isinstance(_annotated.__annotations__["x"], type),
        },
        "annotations": future_mod.Pair.__annotations__,
        "hints": {k: repr(v) for k, v in typing.get_type_hints(future_mod.Pair).items()},
    }


def _annotated(x: int):
    return x


@_check
def extra_runpy():
    """runpy.run_module runs a workspace module through its loader's get_code."""
    import runpy
    namespace = runpy.run_module("src_mod", run_name="as_main")
    return {
        "expect": {"ran": namespace["CONSTANT"] == 1 and namespace["__name__"] == "as_main"},
        "file": namespace["__file__"],
        "cached": namespace["__cached__"],
        "square": namespace["square"](3),
    }
