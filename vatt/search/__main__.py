import sys

from vatt.search.cli import main

sys.exit(main())
