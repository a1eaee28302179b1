"""vatt-motion: a fourth modality for vatt, motion, read from the video the batch already carries.

Registered through entry points only (nothing in vatt imports this package): the tokenizer
``motion_patches``, the head ``motion_mlp`` and the loss ``max_margin``.
"""
from vatt_motion.frames import frame_differences
from vatt_motion.head import MotionHead
from vatt_motion.loss import MaxMarginRankingLoss, max_margin_ranking
from vatt_motion.tokenizer import MotionPatchTokenizer

__all__ = ["MaxMarginRankingLoss", "MotionHead", "MotionPatchTokenizer", "frame_differences", "max_margin_ranking"]
