"""UDP as Windows does it, on any system: recvfrom errors that concern one datagram (WSAEMSGSIZE for a
datagram over the buffer, WSAECONNRESET for an ICMP port unreachable) are fed through a fake socket
into the shared UDP reader (tagio.net.udpmux) and LAN discovery (tagio.net.lan): both read on. The
SIO_UDP_CONNRESET call is checked against a recording WSAIoctl; the real one runs on Windows only."""

import queue
import time
import unittest
from unittest import mock

from tagio import platform
from tagio.net import lan, udpmux, udpstream
from tagio.protocol import rudp as rudp_codec
from tests.platforms import windows_only
from tests.waiting import wait_until

LAYER = "unit"  # pure logic: no sockets, no X, no subprocesses (the sockets are fakes)


def win_error(cls, winerror, text):
    """An OSError as CPython raises it on Windows for a Winsock error (winerror set, errno mapped)."""
    exc = cls(winerror, text)
    exc.winerror = winerror      # on Linux the constructor ignores a winerror argument: set it
    return exc


def emsgsize():
    return win_error(OSError, 10040, "A message sent on a datagram socket was larger than the internal "
                                     "message buffer or some other network limit")


def connreset():
    return win_error(ConnectionResetError, 10054, "An existing connection was forcibly closed by the remote host")


class FakeUdpSocket:
    """recvfrom() returns or raises the scripted items in order, then blocks until close() or a
    datagram sent to itself (how UdpMux.close wakes its reader)."""

    def __init__(self, script):
        self.items = queue.Queue()
        for item in script:
            self.items.put(item)
        self.timeout = None
        self.sent = []
        self.closed = False

    def setsockopt(self, *args):
        pass

    def settimeout(self, seconds):
        self.timeout = seconds

    def getsockname(self):
        return ("127.0.0.1", 40000)

    def fileno(self):
        return 7

    def sendto(self, data, addr):
        self.sent.append((data, addr))
        if addr == self.getsockname():
            self.items.put((data, addr))
        return len(data)

    def recvfrom(self, bufsize, *flags):
        if flags:                              # MSG_DONTWAIT: nothing more queued in this fake
            raise BlockingIOError
        try:
            item = self.items.get(timeout=self.timeout if self.timeout is not None else 5.0)
        except queue.Empty:
            if self.timeout is not None:
                raise TimeoutError("timed out") from None
            raise AssertionError("the reader waited 5 s for a scripted datagram") from None
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self):
        self.closed = True


def rudp_datagram(conn_id: bytes) -> bytes:
    """Enough of a reliable-UDP datagram for the mux to route it by its connection id."""
    return bytes([int(rudp_codec.PacketType.DATA), rudp_codec.VERSION]) + conn_id + bytes(32)


class DatagramErrorTable(unittest.TestCase):
    def test_one_datagram_errors_are_named_and_socket_errors_are_not(self):
        self.assertIn("WSAEMSGSIZE", platform.datagram_error(emsgsize()))
        self.assertIn("WSAECONNRESET", platform.datagram_error(connreset()))
        self.assertIsNone(platform.datagram_error(OSError(9, "Bad file descriptor")))
        self.assertIsNone(platform.datagram_error(win_error(OSError, 10038, "not a socket")))  # WSAENOTSOCK


class SioUdpConnreset(unittest.TestCase):
    def test_wsaioctl_gets_the_code_and_false(self):
        calls = []

        def wsaioctl(*args):
            calls.append(args)
            return 0
        self.assertTrue(platform.disable_udp_connreset(FakeUdpSocket([]), wsaioctl=wsaioctl))
        handle, code, inbuf, insize, outbuf, outsize, returned, overlapped, routine = calls[0]
        self.assertEqual((handle.value, code.value, insize), (7, 0x9800000C, 4))
        self.assertEqual(inbuf._obj.value, 0)            # BOOL FALSE: no ICMP reports
        self.assertEqual((outbuf, outsize, overlapped, routine), (None, 0, None, None))

    def test_refused_is_false_and_elsewhere_nothing_happens(self):
        self.assertFalse(platform.disable_udp_connreset(FakeUdpSocket([]), wsaioctl=lambda *a: -1))
        if not platform.WINDOWS:
            self.assertFalse(platform.disable_udp_connreset(FakeUdpSocket([])))


class MuxReadsOn(unittest.TestCase):
    def test_oversized_datagram_and_icmp_reset_do_not_stop_the_reader(self):
        conn_id = b"\x01\x02\x03\x04"
        good = rudp_datagram(conn_id)
        sock = FakeUdpSocket([emsgsize(), connreset()])
        mux = udpmux.UdpMux(sock)
        inbox = udpmux.Inbox(8)
        mux.register(conn_id, inbox)
        sock.items.put((good, ("10.0.0.2", 5000)))      # after the route exists (it would be dropped)
        try:
            self.assertEqual(inbox.get(timeout=5), (good, ("10.0.0.2", 5000)))
            self.assertEqual(mux.datagram_errors, 2)
            self.assertIsNone(mux.error)
        finally:
            mux.close()                      # re-raises a reader failure: there is none

    def test_a_socket_error_still_ends_the_reader_and_close_reports_it(self):
        mux = udpmux.UdpMux(FakeUdpSocket([OSError(9, "Bad file descriptor")]))
        mux._thread.join(5)
        self.assertFalse(mux._thread.is_alive())
        with self.assertRaisesRegex(Exception, "UDP socket failed"):
            mux.close()


class LanReadsOn(unittest.TestCase):
    def test_a_long_datagram_and_a_reset_do_not_stop_discovery(self):
        announcement = lan.encode_announcement("222222222", 7000)
        sock = FakeUdpSocket([emsgsize(), connreset(), (announcement, ("192.168.1.20", lan.LAN_PORT))])
        with mock.patch.object(lan, "_socket", lambda port: sock):
            service = lan.LanService("111111111", 6000, targets=("192.168.1.255",))
        try:
            wait_until(service.peers, timeout=5, what="the announcement after the two errors")
            self.assertEqual([(p.id, p.address) for p in service.peers()], [("222222222", ("192.168.1.20", 7000))])
            self.assertEqual(service.dropped, 2)
            self.assertTrue(service._thread.is_alive())
        finally:
            service.close()                       # re-raises a thread failure: there is none

    def test_a_socket_error_is_kept_for_close(self):
        sock = FakeUdpSocket([OSError(9, "Bad file descriptor")])
        with mock.patch.object(lan, "_socket", lambda port: sock):
            service = lan.LanService(None, None, targets=("192.168.1.255",))
        service._thread.join(5)
        with self.assertRaises(OSError):
            service.close()


class TimerClock(unittest.TestCase):
    def test_reliable_udp_timers_use_a_sub_millisecond_clock(self):
        self.assertIs(udpstream.CLOCK, time.perf_counter)
        info = time.get_clock_info("perf_counter")
        self.assertLess(info.resolution, 0.001, info)


@windows_only("the real WSAIoctl(SIO_UDP_CONNRESET) on a real UDP socket")
class RealConnresetOff(unittest.TestCase):
    LAYER = "e2e"

    def test_icmp_unreachable_no_longer_fails_recvfrom(self):
        import socket
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as closed, \
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            closed.bind(("127.0.0.1", 0))
            target = closed.getsockname()
            closed.close()                        # nothing listens there: Windows gets ICMP unreachable
            sock.bind(("127.0.0.1", 0))
            self.assertTrue(platform.disable_udp_connreset(sock))
            sock.sendto(b"x", target)
            sock.settimeout(0.5)
            with self.assertRaises(TimeoutError):   # not ConnectionResetError
                sock.recvfrom(64)


if __name__ == "__main__":
    unittest.main()
