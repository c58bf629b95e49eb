"""tagio.net"""
