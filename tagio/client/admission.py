"""The step between the handshake and the session: the host's user accepts or declines.

Theory of operation. After the PAKE both sides hold a SecureChannel, but the host may still have to
ask its user. The host says where it stands with session Admission messages:

    host                                       viewer
    Introduce(host's name)                  <->  Introduce(viewer's name)   (both at once, first)
    Admission(PENDING)   (only when it asks) ->  shows "Waiting for your partner to accept..."
    Ping every PING_AFTER while asking      <->  Pong (each side's heartbeat.Heartbeat listens)
    Admission(ADMITTED)                      ->  connect() returns; Hello follows
    or Bye("the partner declined ...")       ->  PartnerRefused("declined")

While the host's user decides, `HostAdmission` reads the channel in a watcher thread so that a
viewer that cancels (Bye), closes or falls silent for GONE_AFTER is noticed at once: `left` is set
and the accept prompt, which waits on it, closes; a late Accept then finds nobody and starts no
ghost session. Once admitted, the watcher's last read (the viewer's first session message, or
the end of the channel) is handed to the session through `AdmittedChannel`, which the HostSession
uses as its channel: the watcher is the only reader until then, so no message is lost or reordered.

The names ("name this desk") travel only here, inside the channel, never through the relay; each
side strips control characters (protocol.session.clean_name) before anything shows them. The host
reads the viewer's Introduce before it asks its user (the prompt shows the name), bounded by
INTRODUCE_TIMEOUT: a viewer that says nothing loses its channel.

`await_admission` is the viewer's side: it reads until ADMITTED, answering Pings, telling the front
end once that the partner is being asked, and giving up when the user cancels (`cancelled` Event)
or the host is silent for GONE_AFTER.
"""

import inspect
import logging
import threading

from tagio.client.refusal import PartnerRefused
from tagio.errors import ConnectionClosed, RemoteProtocolError, TagioError, TransportTimeout
from tagio.protocol import session as m
from tagio.session.heartbeat import Heartbeat, answer

log = logging.getLogger("tagio.client")

JOIN_TIMEOUT = 5.0
TICK = 0.1                  # how often waiting loops look at their Events
INTRODUCE_TIMEOUT = 10.0    # the viewer sends its Introduce right after the handshake
DECLINED = "the partner declined the connection"
CANCELLED = "the viewer cancelled"


class ConnectCancelled(TagioError):
    """The person at the viewer cancelled the connect."""


# ---------------------------------------------------------------------------- host side


class HostAdmission:
    """The host's side of one accept step on `channel`."""

    def __init__(self, channel, clock=None):
        self.channel = channel
        self.left = threading.Event()        # the viewer cancelled, closed or fell silent
        self._decided = threading.Event()
        self._held = None                    # (data or None, exception or None) for the session
        self._beat = Heartbeat(clock) if clock else Heartbeat()
        self._watcher = None

    def introduce(self, name, timeout=INTRODUCE_TIMEOUT) -> str:
        """Send our desk's name and read the viewer's (its first message); returns the viewer's
        name, cleaned for display. Raises TagioError (the channel is closed when the viewer is
        silent for `timeout`), RemoteProtocolError for anything but an Introduce first."""
        self.channel.send(m.encode(m.Introduce(m.clean_name(name))))
        timer = threading.Timer(timeout, self.channel.close)
        timer.start()
        try:
            msg = m.decode(self.channel.recv())
        finally:
            timer.cancel()
            timer.join()
        self._beat.heard()
        if isinstance(msg, m.Bye):
            raise ConnectionClosed(msg.text or "the viewer left")
        if not isinstance(msg, m.Introduce):
            raise RemoteProtocolError(f"{type(msg).__name__} before the viewer's Introduce")
        return m.clean_name(msg.text)

    def ask(self, callback, peer_id, **info):
        """Tell the viewer we are asking, run `callback(peer_id, cancelled=self.left, **info)` in a
        helper thread and wait for it, pinging the viewer. Returns the callback's answer (True,
        or the rights granted), or False when declined or the viewer left."""
        self.channel.send(m.encode(m.Admission(m.ADMISSION_PENDING)))
        self._watcher = threading.Thread(target=self._watch, name="admission-watch", daemon=True)
        self._watcher.start()
        answer_box = []
        helper = threading.Thread(
            target=lambda: answer_box.append(_ask(callback, peer_id, self.left, info)),
            name="admission-ask", daemon=True)
        helper.start()
        while helper.is_alive():
            helper.join(TICK)
            self._keep_alive()
        if self.left.is_set() or not answer_box:
            return False
        return answer_box[0] or False

    def _keep_alive(self):
        try:
            ping = self._beat.check()
        except TransportTimeout:
            self.left.set()                  # silent viewer: close the prompt
            return
        if ping is not None:
            self._send_quietly(ping)

    def _watch(self):
        """The only reader of the channel until the session starts."""
        try:
            while True:
                data = self.channel.recv()
                self._beat.heard()
                if self._decided.is_set():
                    self._held = (data, None)
                    return
                msg = m.decode(data)
                if isinstance(msg, m.Ping):
                    self._send_quietly(answer(msg))
                elif not isinstance(msg, (m.Pong, m.Introduce)):   # Introduce: when introduce() was not used
                    self.left.set()          # Bye (cancelled) or anything out of place
                    return
        except TagioError as exc:
            self._held = (None, exc)
            self.left.set()

    def _send_quietly(self, msg):
        try:
            self.channel.send(m.encode(msg))
        except TagioError:
            self.left.set()

    def admit(self):
        """The session may start: tell the viewer; returns the channel the HostSession must use."""
        self._decided.set()
        self.channel.send(m.encode(m.Admission(m.ADMISSION_ADMITTED)))
        if self._watcher is None:
            return self.channel
        return AdmittedChannel(self.channel, self)

    def refuse(self, text=None):
        """No session: say why (a Bye `text`, when the viewer is still there), close the channel
        and join the watcher, which the close unblocks."""
        self._decided.set()
        if text:
            self._send_quietly(m.Bye(text))
        self.channel.close()
        if self._watcher is not None:
            self._watcher.join(JOIN_TIMEOUT)

    def take_held(self):
        """Wait for the watcher's last read; (data, exception), either may be None."""
        self._watcher.join()
        held, self._held = self._held, None
        return held or (None, None)


def _ask(callback, peer_id, left, info):
    """The accept callback, given only the keywords it takes (`cancelled`, and the `info` such as
    the viewer's name); a front end that takes none is asked with the ID alone. A callback that
    fails declines (and is logged: it is a bug in the front end)."""
    offered = dict(info, cancelled=left)
    try:
        return callback(peer_id, **_taken(callback, offered))
    except Exception:
        log.exception("accept callback failed; declining")
        return False


def _taken(callback, offered) -> dict:
    """The keywords of `offered` that `callback` accepts."""
    try:
        params = list(inspect.signature(callback).parameters.values())
    except (TypeError, ValueError):
        return {}
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return offered
    names = {p.name for p in params}
    return {k: v for k, v in offered.items() if k in names}


class AdmittedChannel:
    """The channel as the HostSession sees it: the watcher's last read first, then the channel."""

    def __init__(self, channel, admission):
        self._channel = channel
        self._admission = admission
        self._lock = threading.Lock()

    def recv(self):
        admission = self._admission
        if admission is not None:
            with self._lock:
                if self._admission is not None:
                    self._admission = None
                    data, error = admission.take_held()
                    if error is not None:
                        raise error
                    if data is not None:
                        return data
        return self._channel.recv()

    def __getattr__(self, name):
        return getattr(self._channel, name)


# ---------------------------------------------------------------------------- viewer side


def await_admission(channel, *, on_waiting=None, cancelled=None, clock=None, name=""):
    """Introduce us as `name` ("" = no name) and read until the host admits us; returns the host's
    name (cleaned for display, "" when it gave none). Raises PartnerRefused("declined"), ConnectCancelled,
    TransportTimeout (the host fell silent), ConnectionClosed or RemoteProtocolError; the channel
    is closed on any failure."""
    beat = Heartbeat(clock) if clock else Heartbeat()
    done, why = threading.Event(), []
    dog = threading.Thread(target=_watchdog, args=(channel, beat, cancelled, done, why),
                           name="admission-wait", daemon=True)
    dog.start()
    try:
        channel.send(m.encode(m.Introduce(m.clean_name(name))))
        return _read_until_admitted(channel, beat, on_waiting)
    except TagioError:
        channel.close()
        if why:
            raise why[0] from None
        raise
    except BaseException:        # Ctrl+C on the command line: the host's prompt must close too
        channel.close()
        raise
    finally:
        done.set()
        dog.join()


def _read_until_admitted(channel, beat, on_waiting) -> str:
    told, host_name = False, ""
    while True:
        msg = m.decode(channel.recv())
        beat.heard()
        if isinstance(msg, m.Admission) and msg.state == m.ADMISSION_ADMITTED:
            return host_name
        if isinstance(msg, m.Introduce):
            host_name = m.clean_name(msg.text)
        elif isinstance(msg, m.Admission):
            if not told and on_waiting is not None:
                on_waiting()
            told = True
        elif isinstance(msg, m.Ping):
            channel.send(m.encode(answer(msg)))
        elif isinstance(msg, m.Bye):
            if msg.text.lower().startswith(DECLINED):
                raise PartnerRefused("declined", msg.text)
            raise ConnectionClosed(msg.text or "the partner ended the session")
        elif not isinstance(msg, m.Pong):
            raise RemoteProtocolError(f"{type(msg).__name__} before the host admitted us")


def _watchdog(channel, beat, cancelled, done, why):
    """Ends the wait from outside: the user cancelled, or the host fell silent."""
    while not done.wait(TICK):
        if cancelled is not None and cancelled.is_set():
            why.append(ConnectCancelled("the connection was cancelled"))
            _bye(channel, CANCELLED)
            return
        try:
            ping = beat.check()
        except TransportTimeout as exc:
            why.append(exc)
            channel.close()
            return
        if ping is not None:
            try:
                channel.send(m.encode(ping))
            except TagioError:
                pass


def _bye(channel, text):
    try:
        channel.send(m.encode(m.Bye(text)))
    except TagioError:
        pass
    channel.close()
