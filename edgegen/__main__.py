import sys

from edgegen.cli.main import main

sys.exit(main())
