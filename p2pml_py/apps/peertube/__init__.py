"""Seeding PeerTube instances: their API, their swarms, and the ``peertube`` command."""
