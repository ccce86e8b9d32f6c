"""Evaluation of a trained pipeline on the held-out emoji prompts (``cogview2 eval``).

(a) VQ-VAE reconstruction PSNR, (b) accuracy of a group/subgroup classifier trained on the
real renders, (c) Fréchet distance in that classifier's features, (d) inverse-prompt retrieval,
and the per-stage fidelity to the real renders (`stage_fidelity`); the results as `EvalResults`.
"""

from .classifier import ClassifierConfig, EmojiClassifier, predict, train_classifier
from .cli import add_eval_command
from .fidelity import FidelityResults, ssim, stage_fidelity
from .grid import sample_grid
from .metrics import frechet_distance, psnr, retrieval_accuracy
from .results import EvalResults
from .run import EvalConfig, run_evaluation

__all__ = [
    "ClassifierConfig",
    "EmojiClassifier",
    "EvalConfig",
    "EvalResults",
    "FidelityResults",
    "add_eval_command",
    "frechet_distance",
    "predict",
    "psnr",
    "retrieval_accuracy",
    "run_evaluation",
    "sample_grid",
    "ssim",
    "stage_fidelity",
    "train_classifier",
]
