import sys

from CervicalAILib.cli import main

sys.exit(main())
