"""`python -m tfrecords_tools DATASET …` is `python -m tfrecords_tools.build DATASET …`."""

import sys

from tfrecords_tools.build import main

sys.exit(main())
