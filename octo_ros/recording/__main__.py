import sys

from octo_ros.recording.cli import main

sys.exit(main())
