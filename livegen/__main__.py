import sys

from livegen.cli import main

sys.exit(main())
