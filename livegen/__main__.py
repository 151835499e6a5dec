"""The ``livegen`` command and ``python -m livegen``. A command that plays asks for the CPU before
the command line loads: on a busy machine loading it alone took 0.4 s of a performance's start."""
import sys

from livegen.priority import PLAYING_COMMANDS, ask_for_priority

if sys.argv[1:2] and sys.argv[1] in PLAYING_COMMANDS:
    ask_for_priority()

from livegen.cli import main  # noqa: E402  (after the priority: loading it is part of the start)


if __name__ == "__main__":
    sys.exit(main())
