"""The session window inside the real app: view-only signs on both sides of a real session, and the
window's view remembered per partner across a restart of the app.

Real relay on 127.0.0.1, real Clients (the partner is a second, headless Client in this process),
the real App on the shared Xvfb (tests/test_ui_app.py's RelayCase). "Restart" closes the App and its
Tk root and starts a new App with a new root and the settings read again from the config folder.
"""

import json
import os
import unittest

from tests.test_ui_app import RelayCase, tk
from tests.xvfb import skip_unless_xvfb


@skip_unless_xvfb
@unittest.skipIf(tk is None, "Python has no tkinter")
class AppSessionWindow(RelayCase):
    def open_session_window(self, host):
        from tagio.ui.viewer_window import ViewerWindow
        self.connect_to(host)
        window = self.pump(lambda: (self.toplevels(ViewerWindow) or [None])[0], "session window", 20)
        self.pump(lambda: window.drawn_rects > 0, "remote screen drawn", 20)
        return window

    def test_view_only_partner_shows_the_eye_and_the_bar_says_viewing(self):
        from tagio.ui.prompts import AcceptPrompt, ControlledIndicator
        self.wait_online()
        host = self.partner()               # RelayCase's partner shares its screen view-only
        window = self.open_session_window(host)
        self.pump(lambda: window.view_only and window.badge.frame.winfo_ismapped(), "the eye badge", 20)
        badge = window.badge.frame
        shot, _path = self.screenshot("view-only-viewer")
        self.assertEqual(shot.pixel(badge.winfo_rootx() + 2, badge.winfo_rooty() + 2), (0x1f, 0x29, 0x33))
        window.close()
        # and this desk as the host, view-only: its bar says so
        self.app.client.host_options["view_only"] = True
        viewer = self.partner()
        worker, result = self.connect_in_background(viewer)
        prompt = self.pump(lambda: (self.toplevels(AcceptPrompt) or [None])[0], "accept prompt", 20)
        prompt.accept_button.invoke()
        bar = self.pump(lambda: (self.toplevels(ControlledIndicator) or [None])[0], "indicator", 20)
        self.assertTrue(bar.text.startswith("Viewing your screen (no control)"), bar.text)
        self.pump(bar.winfo_viewable, "the bar on screen")
        self.pump(lambda: not worker.is_alive(), "viewer connected", 20)
        self.addCleanup(result["session"].stop)
        self.screenshot("view-only-host")
        bar.disconnect_button.invoke()
        self.pump(lambda: not self.toplevels(ControlledIndicator), "indicator gone", 20)

    def test_the_view_is_remembered_across_a_restart(self):
        self.wait_online()
        host = self.partner()
        window = self.open_session_window(host)
        window.set_zoom("0.5")
        window.set_quality("fastest")
        window.geometry("700x500+20+30")
        self.pump(lambda: (window.winfo_width(), window.winfo_height()) == (700, 500), "the new size")
        window.close()                      # as the close box does
        saved = self.pump(lambda: self.saved_view(host.id), "the view saved in the settings file", 20)
        self.assertEqual((saved["zoom"], saved["quality"]), ("0.5", "fastest"))
        self.assertTrue(saved["geometry"].startswith("700x500"), saved)
        self.restart_app()
        self.wait_online()
        window = self.open_session_window(host)
        self.pump(lambda: (window.winfo_width(), window.winfo_height()) == (700, 500), "the remembered size")
        self.assertEqual(window.scale, 0.5)
        self.assertEqual(window.toolbar.quality_var.get(), "fastest")
        self.assertFalse(window.fullscreen)
        window.close()

    def saved_view(self, partner_id):
        try:
            with open(os.path.join(self.config_dir, "settings.json")) as f:
                return json.load(f).get("partner_views", {}).get(partner_id)
        except (OSError, ValueError):       # not written yet
            return None

    def restart_app(self):
        from tagio.client.core import Client
        from tagio.client.settings import Settings
        from tagio.ui.app import App
        self.app.close(raise_errors=False)
        self.settings = Settings.load(self.config_dir)
        self.settings.relay = self.relay
        self.root = tk.Tk(className="TagIO")

        def factory(**kwargs):
            return Client(self.config_dir, direct_bind=None, **kwargs)
        self.app = App(self.root, factory, self.settings).start()
        self.root.geometry("+10+10")
        self.pump(lambda: self.root.winfo_viewable(), "main window mapped again")


if __name__ == "__main__":
    unittest.main()
