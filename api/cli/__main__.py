"""``python -m sessionflow.api.cli``: the same as the ``sessionflow`` command."""

from sessionflow.api.cli import main

raise SystemExit(main())
