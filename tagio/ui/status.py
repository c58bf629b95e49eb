"""The session window's status: how the partner is reached, latency, frames/s and bandwidth.

Theory of operation. Pure functions and one small meter, no Tk: the window asks `summary()` for the
line under the picture and `details()` for its tooltip every STATUS_EVERY seconds, from the
session's figures. Every number carries its unit and says whether it is a rate ("4.2 Mbit/s") or a
delay ("26 ms latency"): the old line "21 fps - 26 ms - 15036 KB" left people guessing.

- path: the channel's path word ("direct-tcp", "direct-udp", "relay") -> a label and a dot colour
  (tagio.client.words.PATHS). A direct TCP path to an address on the local network reads "LAN".
- latency: the host's capture-to-acknowledgement time in ms (a frame's whole round trip).
- bandwidth: `RateMeter` turns the session's byte counter into Mbit/s over the last WINDOW seconds,
  with an injected clock so it is tested without waiting.
"""

import ipaddress
import time

from tagio.client import words

WINDOW = 2.0            # seconds of byte counts the bandwidth figure averages over
MAX_SAMPLES = 64


def is_local_address(ip) -> bool:
    """True for private, link-local and loopback addresses (a partner on this network)."""
    try:
        address = ipaddress.ip_address(str(ip).split("%")[0])
    except ValueError:
        return False
    return address.is_private or address.is_link_local or address.is_loopback


def path_kind(path, peer_ip=None) -> str:
    """The key of words.PATHS for a channel path and the partner's address (when known)."""
    if path == "direct-tcp" and peer_ip is not None and is_local_address(peer_ip):
        return "lan"
    return path if path in words.PATHS else "unknown"


def path_label(kind) -> tuple:
    """(label, colour) for a path kind."""
    return words.PATHS.get(kind, words.UNKNOWN_PATH)


class RateMeter:
    """Bytes received -> Mbit/s over the last WINDOW seconds (fed a running total)."""

    def __init__(self, clock=time.monotonic, window=WINDOW):
        self.clock, self.window = clock, window
        self._samples = []          # (time, total bytes), oldest first

    def add(self, total_bytes):
        now = self.clock()
        self._samples = [s for s in self._samples if s[0] >= now - self.window][-MAX_SAMPLES + 1:]
        self._samples.append((now, int(total_bytes)))

    def mbit_per_s(self) -> float:
        if len(self._samples) < 2:
            return 0.0
        (t0, b0), (t1, b1) = self._samples[0], self._samples[-1]
        return 0.0 if t1 <= t0 else max(0, b1 - b0) * 8 / (t1 - t0) / 1e6


def summary(kind, latency_ms, fps, mbit) -> str:
    """The status line: "Direct · 26 ms latency · 21 frames/s · 4.2 Mbit/s"."""
    return " \u00b7 ".join((path_label(kind)[0], f"{int(latency_ms)} ms latency", f"{fps:.0f} frames/s",
                            f"{mbit:.1f} Mbit/s"))


def details(partner, kind, path, size, latency_ms, fps, mbit, total_bytes, view_only=False) -> str:
    """The tooltip: the same figures in words, and what they mean."""
    lines = [f"Partner: {partner}",
             f"Path: {path_label(kind)[0]} ({path}). {words.PATH_DETAILS.get(kind, '')}".rstrip(),
             f"Screen: {size[0]}x{size[1]} pixels" if size else "Screen: not received yet",
             f"Latency: {int(latency_ms)} ms from the partner's capture to our acknowledgement",
             f"Frame rate: {fps:.0f} frames per second (last second)",
             f"Bandwidth: {mbit:.2f} Mbit/s (last {WINDOW:g} s); {total_bytes / 1e6:.1f} MB received in all"]
    if view_only:
        lines.append(words.VIEW_ONLY_DETAIL)
    return "\n".join(lines)
