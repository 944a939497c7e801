import sys

from convstore.cli import main

sys.exit(main())
