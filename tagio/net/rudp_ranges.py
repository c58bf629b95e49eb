"""RangeSet: disjoint half-open integer ranges kept sorted, for SACK bookkeeping.

Theory of operation: two parallel sorted lists (starts, ends) searched with
bisect. The reliable stream keeps what its receiver holds above the cumulative
point (its SACK blocks) and what its sender already knows was SACKed in these;
`add()` returns only the newly covered pieces, so an ack repeating old SACK
blocks costs O(log n) instead of a walk over every segment they cover.
"""

import bisect


class RangeSet:
    """Disjoint half-open ranges of sequence numbers, kept sorted: what the receiver holds
    above its cumulative point (its SACK blocks), and what the sender knows was SACKed.
    add() returns only the newly covered pieces, so an ack that repeats old SACK blocks
    costs O(log n), not a walk over everything they cover."""

    __slots__ = ("starts", "ends")

    def __init__(self):
        self.starts, self.ends = [], []

    def __len__(self):
        return len(self.starts)

    def add(self, start: int, end: int) -> list:
        starts, ends = self.starts, self.ends
        i = bisect.bisect_left(ends, start)  # first range ending at or after `start`
        j = bisect.bisect_right(starts, end)  # ranges [i, j) overlap or touch [start, end)
        if i == j:
            starts.insert(i, start)
            ends.insert(i, end)
            return [(start, end)]
        new, pos = [], start
        for k in range(i, j):
            if starts[k] > pos:
                new.append((pos, min(starts[k], end)))
            pos = max(pos, ends[k])
        if pos < end:
            new.append((pos, end))
        starts[i:j], ends[i:j] = [min(start, starts[i])], [max(end, ends[j - 1])]
        return new

    def discard_below(self, point: int):
        starts, ends = self.starts, self.ends
        cut = bisect.bisect_right(ends, point)
        del starts[:cut], ends[:cut]
        if starts and starts[0] < point:
            starts[0] = point

    def first(self, count: int) -> tuple:
        return tuple(zip(self.starts[:count], self.ends[:count]))
