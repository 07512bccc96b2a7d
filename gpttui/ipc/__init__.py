"""Talking to engine and sampler processes (no torch, no Textual).

UI side: process.py (a child the UI started, on pipes) and client.py (a running engine through
its control socket), both a peer.Peer whose reader threads fill an inbox.Inbox.
Engine side: server.py, the control socket the engine serves.
"""
