"""``python -m mixedfx``: the command line (see :mod:`mixedfx.cli`)."""

from .cli import main

raise SystemExit(main())
