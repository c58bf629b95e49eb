"""A tooltip: a small borderless window with text, shown while the pointer rests on a widget.

Theory of operation. `<Enter>` schedules the tip after DELAY_MS with after(); `<Leave>` and a button
press cancel it or hide it. The text is asked of `text_fn` when the tip opens, so it is current
(the status tooltip shows figures of the moment). Only the Tk thread touches it, as every widget.
"""

import tkinter as tk

DELAY_MS = 500


class Tooltip:
    def __init__(self, widget, text_fn, delay_ms=DELAY_MS):
        self.widget, self.text_fn, self.delay_ms = widget, text_fn, delay_ms
        self.tip = None
        self._after_id = None
        widget.bind("<Enter>", self._schedule, add="+")
        widget.bind("<Leave>", self.hide, add="+")
        widget.bind("<ButtonPress>", self.hide, add="+")

    def _schedule(self, _event=None):
        self._cancel()
        self._after_id = self.widget.after(self.delay_ms, self.show)

    def _cancel(self):
        if self._after_id is not None:
            self.widget.after_cancel(self._after_id)
            self._after_id = None

    def show(self):
        """Open the tip under the widget (also callable directly)."""
        self._after_id = None
        self.hide()
        self.tip = tk.Toplevel(self.widget)
        self.tip.wm_overrideredirect(True)
        self.label = tk.Label(self.tip, text=self.text_fn(), justify="left", background="#ffffe0",
                              relief="solid", borderwidth=1, padx=6, pady=4)
        self.label.pack()
        self.tip.update_idletasks()
        x = self.widget.winfo_rootx()
        y = self.widget.winfo_rooty() - self.tip.winfo_reqheight() - 4
        if y < 0:
            y = self.widget.winfo_rooty() + self.widget.winfo_height() + 4
        self.tip.wm_geometry(f"+{x}+{y}")

    def hide(self, _event=None):
        self._cancel()
        if self.tip is not None:
            try:
                self.tip.destroy()
            except tk.TclError:
                pass
            self.tip = None

    @property
    def text(self):
        return self.label.cget("text") if self.tip is not None else None
