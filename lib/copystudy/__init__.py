"""copystudy: training as compression, and Shapley royalty shares, as reproducible experiments."""

import pkgutil
import warnings

__version__ = "0.1.0"

# A folder of yours on PYTHONPATH holding copystudy/experiments/<name>/ (no __init__.py in copystudy/ or
# copystudy/experiments/ there) adds an experiment: both package paths extend over sys.path.
__path__ = pkgutil.extend_path(__path__, __name__)

# tqdm.auto (imported by diffusers and transformers) warns in a kernel without ipywidgets; the study's bars
# are plain text on purpose (widgets do not survive in stored notebooks), so the warning is noise.
warnings.filterwarnings("ignore", message="IProgress not found")

# The environment variable in which `copystudy run` names its terminal for the notebook's kernel:
# the kernel draws live progress bars there and writes one line per loop into the notebook (training.progress).
PROGRESS_TO = "COPYSTUDY_PROGRESS_TO"
