"""The first start of the window on Windows: explain the firewall question before Windows asks it.

Theory of operation: the host's direct listener (tagio.client.paths) makes Windows Defender Firewall
ask, once per program, whether "tagio-gui.exe" (publisher: unknown, as the exe is unsigned) may accept
connections. Unexplained, people press Cancel, or the network is "Public", and direct paths and LAN
discovery then fail in silence. So the home window shows FIREWALL_NOTICE once, drawn before the
client opens its listener; `settings.firewall_notice_shown` remembers that it was said.
"""

FIREWALL_NOTICE = ("Windows will ask whether TagIO may accept connections: choose Allow access "
                   "(private networks) so that partners on your network connect directly. "
                   "Cancel still works, more slowly, through the relay.")


def firewall_notice(settings, windows: bool):
    """The notice to show now, or None (not Windows, or already shown once)."""
    if not windows or settings.firewall_notice_shown:
        return None
    return FIREWALL_NOTICE


def show_firewall_notice(home, settings, windows: bool) -> bool:
    """Put the notice in the home window's status bar and remember it (the Tk thread; before the
    client starts). A settings file that cannot be written only means the notice comes again."""
    text = firewall_notice(settings, windows)
    if text is None:
        return False
    home.set_notice(text)
    home.winfo_toplevel().deiconify()  # on screen before the listener makes Windows ask
    home.update_idletasks()
    settings.firewall_notice_shown = True
    try:
        settings.save()
    except Exception:                 # ConfigError: read-only folder; nothing worse than a repeat
        pass
    return True
