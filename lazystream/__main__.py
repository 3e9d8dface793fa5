"""``python -m lazystream``: see ``lazystream.cli``."""
import sys

from .cli import main

sys.exit(main())
