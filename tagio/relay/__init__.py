"""tagio.relay"""
