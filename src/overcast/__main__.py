"""``python -m overcast``: the same as the ``overcast`` command."""

from .cli import main

main()
