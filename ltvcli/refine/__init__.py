"""Active label refinement: which labels should an expert re-read? (Khanal et al., MICCAI 2024).

* :mod:`~ltvcli.refine.targets`   the entries (image, finding) and their training labels
* :mod:`~ltvcli.refine.coteach`   phase 1: co-teaching with VoG selection -> kept / suspect entries
* :mod:`~ltvcli.refine.scores`    phase 2: active-learning scores that rank the suspects
* :mod:`~ltvcli.refine.queue`     the relabel queue (CSV) and its thumbnail sheet (HTML)
* :mod:`~ltvcli.refine.run`       ``ltv refine`` end to end, with a reusable run folder
* :mod:`~ltvcli.refine.relabels`  the expert's answers back into a dataset (``ltv ingest relabels``)
* :mod:`~ltvcli.refine.simulate_loop`  the loop with the ground truth as the expert (``ltv refine-sim``)
"""

from ltvcli.refine.coteach import CoTeaching, CoteachConfig, ModelOutputs, Selection
from ltvcli.refine.queue import CANDIDATES, build_queue, write_queue, write_sheet
from ltvcli.refine.relabels import Answers, apply_answers, import_relabels, read_answers
from ltvcli.refine.run import refine, select
from ltvcli.refine.scores import STRATEGIES, pick
from ltvcli.refine.simulate_loop import SIM_STRATEGIES, simulate_refinement, summarize
from ltvcli.refine.targets import EXPERT_SET, Targets, fuse, training_targets

__all__ = [
    "Answers", "CANDIDATES", "CoTeaching", "CoteachConfig", "EXPERT_SET", "ModelOutputs", "SIM_STRATEGIES",
    "STRATEGIES", "Selection", "Targets", "apply_answers", "build_queue", "fuse", "import_relabels", "pick",
    "read_answers", "refine", "select", "simulate_refinement", "summarize", "training_targets", "write_queue",
    "write_sheet",
]
