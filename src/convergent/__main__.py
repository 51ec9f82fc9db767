"""``python -m convergent`` (e.g. under ``torchrun ... -m convergent train ...``)."""

import sys

from convergent.cli import main

sys.exit(main())
