"""tagio.ui"""
