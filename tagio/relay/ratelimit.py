"""Per-address token buckets with an injected clock, bounded in memory.

Each key (a source IP) gets a bucket of `burst` tokens refilled at `rate` per
second. The table holds at most `max_keys` buckets; when full, the bucket
touched longest ago is dropped (it would be nearly full again anyway), so a
flood of spoofed or many distinct addresses cannot grow memory without bound.
"""

from collections import OrderedDict


class RateLimiter:
    def __init__(self, clock, rate: float, burst: float, max_keys: int = 65536):
        self.clock = clock
        self.rate = float(rate)
        self.burst = float(burst)
        self.max_keys = max_keys
        self._buckets = OrderedDict()  # key -> (tokens, last_time)

    def allow(self, key, cost: float = 1.0) -> bool:
        """Take `cost` tokens for `key` if it has them; False means "over the limit"."""
        now = self.clock()
        tokens, last = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        allowed = tokens >= cost
        if allowed:
            tokens -= cost
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return allowed

    def __len__(self):
        return len(self._buckets)
