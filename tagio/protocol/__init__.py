"""tagio.protocol"""
