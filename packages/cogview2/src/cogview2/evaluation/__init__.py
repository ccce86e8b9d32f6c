"""Evaluation of a trained pipeline on the held-out emoji prompts (``cogview2 eval``).

(a) VQ-VAE reconstruction PSNR, (b) accuracy of a group/subgroup classifier trained on the
real renders, (c) Fréchet distance in that classifier's features, (d) inverse-prompt retrieval.
"""

from .classifier import ClassifierConfig, EmojiClassifier, predict, train_classifier
from .cli import add_eval_command
from .grid import sample_grid
from .metrics import frechet_distance, psnr, retrieval_accuracy
from .run import EvalConfig, run_evaluation

__all__ = [
    "ClassifierConfig",
    "EmojiClassifier",
    "EvalConfig",
    "add_eval_command",
    "frechet_distance",
    "predict",
    "psnr",
    "retrieval_accuracy",
    "run_evaluation",
    "sample_grid",
    "train_classifier",
]
