"""``python -m ivvae.cli``: the ``ivvae`` command."""

import sys

from . import main

sys.exit(main())
