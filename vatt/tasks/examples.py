"""The smallest valid config of each built-in task: its registry ``example``, which the contract tests validate
and summarise (``--list`` shows it too). Each is a complete config, as `python -m vatt.run` would load one,
without data (a task's ``check_data`` is what asks for it)."""
from __future__ import annotations

VIDEO = {"type": "video_patches", "patch_size": [2, 8, 8], "frames": 4, "size": 16, "dropout": 0.0}
AUDIO = {"type": "waveform_patches", "patch_size": 64, "samples": 512, "dropout": 0.0}
TEXT = {"type": "words", "vocab_size": 32, "embed_dim": 8, "max_words": 8}
VIT = {"type": "vit", "width": 16, "layers": 1, "mlp_dim": 32, "heads": 2, "dropout": 0.0}
T5 = {"type": "t5_text", "width": 16, "layers": 1, "mlp_dim": 32, "heads": 2, "dropout": 0.0}

MODEL = {"modalities": {
    "video": {"tokenizer": VIDEO, "backbone": VIT, "head": {"type": "fac_video", "va_dim": 8, "vt_dim": 4}},
    "audio": {"tokenizer": AUDIO, "backbone": VIT, "head": {"type": "linear", "dim": 8, "space": "va"}},
    "text": {"tokenizer": TEXT, "backbone": T5, "head": {"type": "linear", "dim": 4, "space": "vt"}},
}}
TRAINING = {"optimizer": {"type": "adam", "lr": 1e-3}, "schedule": {"type": "constant"}}

PRETRAIN = {"task": "pretrain", "model": MODEL, **TRAINING,
            "losses": [{"type": "nce", "inputs": ["video.va", "audio.va"]},
                       {"type": "mil_nce", "inputs": ["video.vt", "text.vt"]}]}
FINETUNE = {"task": "finetune", "model": {"tokenizer": VIDEO, "backbone": VIT, "num_classes": 3}, **TRAINING}
AUDIO_FINETUNE = {"task": "audio_finetune", **TRAINING,
                  "model": {"tokenizer": AUDIO, "backbone": VIT, "modality": "audio", "num_classes": 3}}
LINEAR_EVAL = {"task": "linear_eval", "model": {"tokenizer": VIDEO, "backbone": VIT}}
ZERO_SHOT = {"task": "zero_shot", "model": {"modalities": {m: MODEL["modalities"][m] for m in ("video", "text")}},
             "evaluators": [{"type": "zero_shot_retrieval"}]}
