"""Two small Tk helpers the controller's parts share (app.py, host_side.py, viewer_side.py).

Theory of operation: a window the controller keeps may have been closed by the user or the window
manager at any moment, and Tk raises TclError for anything asked of a destroyed widget (or of any
widget once the interpreter is gone). The controller asks `exists()` before it uses one and closes
one with `destroy()`, which does nothing when it is gone already.
"""


def exists(widget) -> bool:
    """True while `widget` is still a live Tk window."""
    try:
        return bool(widget.winfo_exists())
    except Exception:   # Tcl errors out once the widget's interpreter is gone
        return False


def destroy(widget):
    """Destroy `widget` unless it is gone already."""
    try:
        widget.destroy()    # a ViewerWindow's destroy() also lets go of its session's display
    except Exception:   # already destroyed
        pass
