"""Colours, fonts and ttk styles shared by every TagIO window.

Theory of operation: `apply(root)` is called once on the Tk root.  It picks the portable
"clam" ttk theme (the native themes differ too much between X11, Windows and macOS to lay
out the same), derives named fonts from Tk's defaults so the user's size preference is
kept, and registers a few named styles ("Title.TLabel", "Big.TLabel", "Accent.TButton",
"Status.*.TLabel") that the windows refer to by name.  Widgets never hard-code colours.
"""

import tkinter as tk
from tkinter import font as tkfont
from tkinter import ttk

BG = "#f4f6f9"
CARD = "#ffffff"
BORDER = "#d8dde6"
TEXT = "#1f2933"
MUTED = "#616e7c"
ACCENT = "#d6452f"          # TagIO red
HEADER_BG = "#20252d"
HEADER_FG = "#ffffff"

# colour key from model.RELAY_STATUS_TEXT -> foreground colour
STATUS_COLOURS = {
    "ok": "#1e8e3e",
    "busy": "#b26a00",
    "error": "#c62828",
    "idle": MUTED,
}

PAD = 12          # outer padding of a card
GAP = 8           # between related widgets


def _fonts(root):
    base = tkfont.nametofont("TkDefaultFont", root=root)
    family, size = base.actual("family"), abs(base.actual("size")) or 10
    return {
        "body": (family, size),
        "small": (family, max(size - 1, 8)),
        "heading": (family, size + 1, "bold"),
        "title": (family, size + 6, "bold"),
        "big": (family, size + 10, "bold"),
        "mono": ("DejaVu Sans Mono" if "DejaVu Sans Mono" in tkfont.families(root) else "TkFixedFont",
                 size + 6, "bold"),
    }


def apply(root: tk.Misc) -> dict:
    """Style `root` and return the font table (name -> Tk font spec)."""
    fonts = _fonts(root)
    style = ttk.Style(root)
    if "clam" in style.theme_names():
        style.theme_use("clam")
    root.configure(background=BG)
    style.configure(".", background=BG, foreground=TEXT, font=fonts["body"])
    style.configure("TFrame", background=BG)
    style.configure("Card.TFrame", background=CARD, relief="solid", borderwidth=1,
                    bordercolor=BORDER, lightcolor=BORDER, darkcolor=BORDER)
    style.configure("Plain.TFrame", background=CARD, borderwidth=0)
    style.configure("Header.TFrame", background=HEADER_BG)
    style.configure("Header.TLabel", background=HEADER_BG, foreground=HEADER_FG, font=fonts["title"])
    style.configure("HeaderSub.TLabel", background=HEADER_BG, foreground="#aab4c0", font=fonts["small"])
    style.configure("TLabel", background=BG)
    style.configure("Card.TLabel", background=CARD)
    style.configure("Heading.TLabel", background=CARD, font=fonts["heading"])
    style.configure("Muted.TLabel", background=CARD, foreground=MUTED, font=fonts["small"])
    style.configure("Big.TLabel", background=CARD, foreground=TEXT, font=fonts["big"])
    style.configure("Mono.TLabel", background=CARD, foreground=TEXT, font=fonts["mono"])
    style.configure("Error.TLabel", background=CARD, foreground=STATUS_COLOURS["error"], font=fonts["small"])
    style.configure("Card.TCheckbutton", background=CARD)
    style.configure("Accent.TButton", background=ACCENT, foreground="#ffffff", font=fonts["heading"],
                    bordercolor=ACCENT, padding=(16, 6))
    style.map("Accent.TButton", background=[("disabled", "#e8a79c"), ("active", "#b93a26")])
    style.configure("TButton", padding=(10, 4))
    style.configure("Small.TButton", padding=(8, 2), font=fonts["small"], width=-6)
    style.configure("Entry.TEntry", padding=(6, 4))
    for key, colour in STATUS_COLOURS.items():
        style.configure(f"Status.{key}.TLabel", background=BG, foreground=colour, font=fonts["small"])
    style.configure("Treeview", rowheight=int(fonts["body"][1] * 2.4), background=CARD, fieldbackground=CARD)
    return fonts


def indicator_font(widget) -> tuple:
    """Bold body font for the "being controlled" bar (works before or after apply())."""
    return _fonts(widget)["heading"]


def app_icon(root: tk.Misc) -> tk.PhotoImage:
    """A 32x32 window/taskbar icon drawn in code (no image file to ship): a red tile with a white T."""
    icon = tk.PhotoImage(master=root, width=32, height=32)
    icon.put(ACCENT, to=(0, 0, 32, 32))
    icon.put("#ffffff", to=(7, 7, 25, 12))      # the bar of the T
    icon.put("#ffffff", to=(13, 12, 19, 26))    # its stem
    root.iconphoto(True, icon)
    return icon                                 # keep a reference: Tk forgets unreferenced images
