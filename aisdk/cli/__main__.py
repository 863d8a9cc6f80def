import sys

from aisdk.cli.main import main

sys.exit(main())
