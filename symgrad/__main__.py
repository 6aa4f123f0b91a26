"""Allow ``python -m symgrad``."""

from symgrad.cli import main

raise SystemExit(main())
