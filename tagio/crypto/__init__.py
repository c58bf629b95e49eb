"""tagio.crypto"""
