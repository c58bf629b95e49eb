"""Run fuzz targets for a time budget; collect what went wrong.

`run(target, seconds, seed)` feeds mutated inputs to one target until the budget is spent and
returns a Result: inputs tried, how many decoded (and were round-tripped) and how many were
refused with an allowed error, the slowest input, and the failures: any other exception out of a
decoder (a bug, never the peer's fault), or a failed round trip. Each failure keeps the input's
hex so it can be replayed.
"""

import random
import time
import traceback
from dataclasses import dataclass, field

from tests.fuzz.mutate import Mutator

MAX_FAILURES = 20       # per target: enough to see a pattern, bounded memory
SLOW_INPUT = 1.0        # seconds; one input taking this long is reported (a hang, or close to one)


@dataclass
class Result:
    name: str
    inputs: int = 0
    accepted: int = 0
    rejected: int = 0
    seconds: float = 0.0
    slowest: float = 0.0
    failures: list = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.inputs / self.seconds if self.seconds else 0.0

    def line(self) -> str:
        return (f"{self.name:10s} {self.inputs:9d} inputs {self.rate:9.0f}/s  accepted {self.accepted:7d}  "
                f"refused {self.rejected:8d}  slowest {self.slowest * 1000:6.1f} ms  failures {len(self.failures)}")


def _check(target, data, result):
    try:
        items = target.parse(data)
    except target.allowed:
        result.rejected += 1
        return
    for item in items:
        target.round_trip(item)
    result.accepted += 1


def run(target, seconds: float, seed: int, max_inputs: int = None) -> Result:
    """Fuzz `target` for `seconds` (or `max_inputs`) with a fixed seed."""
    rng = random.Random(f"{seed}:{target.name}")
    mutator = Mutator(target.seeds(), rng)
    result = Result(target.name)
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline and (max_inputs is None or result.inputs < max_inputs):
        data = mutator.next()
        t0 = time.perf_counter()
        try:
            _check(target, data, result)
        except Exception as exc:  # anything else is a bug: keep it with the input that caused it
            if len(result.failures) < MAX_FAILURES:
                result.failures.append((data.hex(), f"{type(exc).__name__}: {exc}",
                                        "".join(traceback.format_exception(exc)[-3:])))
        result.slowest = max(result.slowest, time.perf_counter() - t0)
        result.inputs += 1
    result.seconds = time.perf_counter() - started
    return result
