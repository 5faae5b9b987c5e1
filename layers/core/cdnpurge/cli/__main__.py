"""`python -m cdnpurge.cli`: the same command as the `cdnpurge` console script."""

import sys

from cdnpurge.cli.main import main

sys.exit(main())
