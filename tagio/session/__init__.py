"""tagio.session"""
