"""Embedded providers, the defaults of target ``local``: SQLite, files, memory and the environment.

Nothing here needs a server or an extra; each module is imported by the registry
only when its URL scheme is first used.
"""
