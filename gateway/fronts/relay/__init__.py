"""Seed 001 front (``relay``): the connection-id WebSocket relay on parley's core.

``codec`` (pure wire shapes), ``rooms`` (app name → parley room), ``admin`` (key check and
attempt limits), ``server`` (the listener). See ``server``'s docstring for how it maps onto
parley's messages, direct messages and connection approval.
"""
