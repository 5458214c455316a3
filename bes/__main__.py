"""`python -m bes` runs the `bes` command."""

import sys

from bes.cli import main

sys.exit(main())
