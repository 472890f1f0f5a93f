import sys

from copystudy.runner.cli import main

if __name__ == "__main__":  # not when a spawned worker process (Dask, multiprocessing) imports this module
    sys.exit(main())
