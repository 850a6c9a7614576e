"""``python -m gtsp`` runs the ``gtsp`` command (for environments where the script is not installed)."""
import sys

from gtsp.cli import main

sys.exit(main())
