"""Mutations for the fuzz harness: bit flips, byte sets, truncation, insertion, splices, length lies.

A Mutator starts from the golden vectors of one format (the seeds) and stacks one to three
mutations on a randomly chosen seed; now and then it returns a seed unchanged (so the round-trip
check always sees valid input) or pure random bytes. "Length lies" overwrite a 1-, 2-, 4- or
8-byte big-endian field at a random offset with a boundary value (0, 1, the maximum, the input's
own length and its neighbours), which is how a length prefix lies to a parser.
"""

import random

MAX_INPUT = 1 << 17                    # keeps a mutated input's size bounded
_INTERESTING_BYTES = (0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF)
_WIDTHS = (1, 2, 4, 8)


class Mutator:
    def __init__(self, seeds, rng: random.Random):
        self.seeds = [bytes(s) for s in seeds] or [b""]
        self.rng = rng
        self.ops = (self.flip_bits, self.set_byte, self.truncate, self.cut_middle, self.insert, self.append,
                    self.splice, self.length_lie, self.length_lie, self.duplicate)

    def next(self) -> bytes:
        roll = self.rng.random()
        if roll < 0.05:
            return self.rng.choice(self.seeds)
        if roll < 0.08:
            return self.rng.randbytes(self.rng.randrange(0, 64))
        data = bytearray(self.rng.choice(self.seeds))
        for _ in range(self.rng.randint(1, 3)):
            data = self.rng.choice(self.ops)(data)
        return bytes(data[:MAX_INPUT])

    def _pos(self, data, end=False):
        return self.rng.randrange(len(data) + (1 if end else 0)) if data or end else 0

    def flip_bits(self, data):
        for _ in range(self.rng.randint(1, 4)):
            if data:
                data[self._pos(data)] ^= 1 << self.rng.randrange(8)
        return data

    def set_byte(self, data):
        if data:
            value = self.rng.choice(_INTERESTING_BYTES) if self.rng.random() < 0.5 else self.rng.randrange(256)
            data[self._pos(data)] = value
        return data

    def truncate(self, data):
        return data[:self._pos(data, end=True)]

    def cut_middle(self, data):
        at = self._pos(data, end=True)
        del data[at:at + self.rng.randint(1, 16)]
        return data

    def insert(self, data):
        at = self._pos(data, end=True)
        data[at:at] = self.rng.randbytes(self.rng.randint(1, 16))
        return data

    def append(self, data):
        return data + self.rng.randbytes(self.rng.randint(1, 32))

    def splice(self, data):
        other = self.rng.choice(self.seeds)
        return data[:self._pos(data, end=True)] + other[self.rng.randrange(len(other) + 1):]

    def duplicate(self, data):
        if not data:
            return data
        start = self._pos(data)
        chunk = data[start:start + self.rng.randint(1, 32)]
        at = self._pos(data, end=True)
        data[at:at] = chunk
        return data

    def length_lie(self, data):
        width = self.rng.choice(_WIDTHS)
        if len(data) < width:
            return data
        top = (1 << (8 * width)) - 1
        n = len(data)
        value = self.rng.choice((0, 1, top, top - 1, top >> 1, n, n - 1, n + 1, self.rng.randrange(top + 1)))
        at = self.rng.randrange(len(data) - width + 1)
        data[at:at + width] = (value & top).to_bytes(width, "big")
        return data
