"""Long fuzz run: `python3 -m tests.fuzz [--seconds N] [--seed S] [target ...]`.

Runs each target (all by default) for N seconds (default 10), prints inputs per second per
parser, and every failure with the input's hex; exits 1 if anything failed.
"""

import argparse
import sys
import time

from tests.fuzz.runner import run
from tests.fuzz.targets import TARGETS, TARGETS_BY_NAME


def main(argv) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m tests.fuzz", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds per parser (default 10)")
    parser.add_argument("--seed", type=int, default=int(time.time()), help="random seed (default: the time)")
    parser.add_argument("targets", nargs="*", choices=[[]] + sorted(TARGETS_BY_NAME), metavar="target",
                        help=f"parsers to fuzz (default all: {', '.join(TARGETS_BY_NAME)})")
    args = parser.parse_args(argv)
    chosen = [TARGETS_BY_NAME[n] for n in args.targets] or TARGETS
    print(f"seed {args.seed}, {args.seconds:g} s per parser")
    failed = 0
    for target in chosen:
        result = run(target, args.seconds, args.seed)
        print(result.line(), flush=True)
        for hexdata, error, where in result.failures:
            failed += 1
            print(f"  FAIL {error}\n  input {hexdata[:400]}\n{where}")
    total = sum(1 for _ in chosen)
    print(f"{total} parsers, {failed} failures")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
