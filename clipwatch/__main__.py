"""`python -m clipwatch` runs the CLI."""

import sys

from clipwatch.cli import main

sys.exit(main())
