"""``python -m neuronkit``: the command line (see ``neuronkit.cli``)."""

import sys

from .cli.main import main

sys.exit(main())
