"""Runs one fidelity check from disk and prints its JSON result.

    python3 python_shim/fidelity/run_on_disk.py item01
    python3 python_shim/fidelity/run_on_disk.py --list

The workspace folder is ``sys.path[0]`` (as for a script living in it) and
``python_shim`` comes next, for the ``runeflow`` SDK. No bytecode is
written, so the workspace stays as it is checked in. The printed JSON is
what the same check must return through the worker.
"""

import json
import os
import sys

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
WORKSPACE = os.path.join(HERE, "workspace")
SHIM = os.path.dirname(HERE)


def main(argv):
    if len(argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    sys.path[0] = WORKSPACE
    sys.path.insert(1, SHIM)
    import fidelity_checks
    name = "list" if argv[1] == "--list" else argv[1]
    print(json.dumps(fidelity_checks.check(name), sort_keys=True, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
