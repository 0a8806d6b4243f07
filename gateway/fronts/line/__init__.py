"""Seed 000 (``line``): a line-oriented TCP chat — auth, send, inbox, show, logout.

``codec`` is the pure protocol, ``room`` the one parley room its direct messages go through,
``server`` the listener and sessions.
"""
