"""The authors' checkpoints, read from their variables' names and shapes alone: which model, what sizes, and
where each variable goes in vatt.

`plan(variables)` takes ``{checkpoint key: shape}`` (``tf.train.list_variables``' view, no weights) and
returns a `Plan`: the vatt ``model`` config section that rebuilds the architecture and one `Rule` per model
variable (its vatt state-dict name and the layout change). Names are mapped explicitly, module by module, as
the release's naming (README of the reference data, §3) lays them out; nothing is matched by pattern guessing.
Head counts and T5's maximum relative distance are not in any shape: the released widths have known values,
any other width needs them given (`Hyper`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from vatt.errors import UserError
from vatt.models.transformer import SIZES

SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
MODEL = "model/layer_with_weights-0/"
TX_FAC = MODEL + "_base_layer/"
UT_FAC = MODEL + "_base_layer/unified_backbone/unified_transformer/"
HEAD = MODEL + "_head_layer/_bridge_heads/0/"
CLASSIFIER = MODEL + "_base/"
# The release's head counts for its widths (ViT/WaT/T5 Small 512: 8, Base 768: 12, Medium/Large 1024: 16).
RELEASED_HEADS = {512: 8, 768: 12, 1024: 16}
RELEASED_MAX_DISTANCE = 64
BN_NAMES = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"}
LN_NAMES = {"gamma": "weight", "beta": "bias"}


@dataclass
class Hyper:
    """What shapes cannot tell: heads per tower (``video``, ``audio``, ``text``; ``shared`` for ut_fac)."""
    heads: dict[str, int] = field(default_factory=dict)
    max_relative_distance: int | None = None


@dataclass(frozen=True)
class Rule:
    """Checkpoint variable ``source`` → vatt entry ``target``; ``layout`` says how its axes change:
    ``copy``, ``transpose`` (Dense kernel [in, out] → weight [out, in]), ``patch_kernel`` (Conv kernel
    [*patch, C, D] → [D, C·prod(patch)]); ``part`` = (i, n): it fills the i-th of n equal row blocks (query,
    key and value in one matrix)."""
    source: str
    target: str
    layout: str = "copy"
    part: tuple[int, int] | None = None


@dataclass
class Plan:
    kind: str                      # tx_fac, ut_fac, video_classifier, audio_classifier
    model: dict                    # the vatt config's model section
    rules: list[Rule]
    num_classes: int | None = None


def strip(key: str) -> str:
    return key[: -len(SUFFIX)] if key.endswith(SUFFIX) else key


def is_model_variable(key: str) -> bool:
    return key.startswith("model/") and ".OPTIMIZER_SLOT" not in key


class _Reader:
    """The checkpoint's shapes under one prefix, with errors that name the part of the model being read."""

    def __init__(self, shapes: dict[str, tuple[int, ...]], prefix: str, what: str):
        self.shapes, self.prefix, self.what = shapes, prefix, what

    def has(self, name: str) -> bool:
        return self.prefix + name in self.shapes

    def shape(self, name: str) -> tuple[int, ...]:
        if not self.has(name):
            raise UserError(f"the {self.what} lacks the variable {self.prefix + name}: not an architecture vatt "
                            f"converts (found under {self.prefix}: {_groups(self.shapes, self.prefix)})")
        return self.shapes[self.prefix + name]

    def rule(self, name: str, target: str, layout: str = "copy", part: tuple[int, int] | None = None) -> Rule:
        self.shape(name)
        return Rule(self.prefix + name, target, layout, part)

    def layers(self, stack: str) -> int:
        pattern = re.compile(re.escape(self.prefix + stack) + r"/(\d+)/")
        found = {int(m.group(1)) for key in self.shapes if (m := pattern.match(key))}
        if not found or found != set(range(len(found))):
            raise UserError(f"the {self.what} has no layers 0..n-1 under {self.prefix + stack}/ (found "
                            f"{sorted(found)[:8]}): not an architecture vatt converts")
        return len(found)


def _heads(hyper: Hyper, tower: str, width: int) -> int:
    if tower in hyper.heads:
        heads = hyper.heads[tower]
    elif width in RELEASED_HEADS:
        heads = RELEASED_HEADS[width]
    else:
        raise UserError(f"the {tower} transformer is {width} wide, not a released width "
                        f"({', '.join(map(str, RELEASED_HEADS))}): its head count is not in the checkpoint; "
                        f"give it with --heads {tower}=N")
    if width % heads:
        raise UserError(f"--heads {tower}={heads} does not divide the {tower} width {width}")
    return heads


def _vit(r: _Reader, target: str, hyper: Hyper, tower: str) -> tuple[dict, list[Rule]]:
    """A pre-LN ViT/WaT stack (``tx/layers/n``, ``tx/final_layer_norm``) → vatt's ``vit`` backbone."""
    layers = r.layers("tx/layers")
    width, mlp_dim = r.shape("tx/layers/0/feed_forward/mlp/wi/kernel")
    heads = _heads(hyper, tower, width)
    rules = []
    for n in range(layers):
        src, dst = f"tx/layers/{n}/", f"{target}blocks.{n}."
        for tf_name, name in LN_NAMES.items():
            rules.append(r.rule(f"{src}layer_norm/{tf_name}", f"{dst}attention_norm.{name}"))
            rules.append(r.rule(f"{src}feed_forward/layer_norm/{tf_name}", f"{dst}mlp_norm.{name}"))
        for i, proj in enumerate("qkv"):
            rules.append(r.rule(f"{src}mha/{proj}/kernel", f"{dst}attention.qkv.weight", "transpose", (i, 3)))
            rules.append(r.rule(f"{src}mha/{proj}/bias", f"{dst}attention.qkv.bias", part=(i, 3)))
        for tf_name, name in (("mha/o", "attention.out"), ("feed_forward/mlp/wi", "mlp_in"),
                              ("feed_forward/mlp/wo", "mlp_out")):
            rules.append(r.rule(f"{src}{tf_name}/kernel", f"{dst}{name}.weight", "transpose"))
            rules.append(r.rule(f"{src}{tf_name}/bias", f"{dst}{name}.bias"))
    rules += [r.rule(f"tx/final_layer_norm/{tf}", f"{target}final_norm.{name}") for tf, name in LN_NAMES.items()]
    return _backbone_node(width, layers, mlp_dim, heads), rules


def _backbone_node(width: int, layers: int, mlp_dim: int, heads: int) -> dict:
    for size, dims in SIZES.items():
        if dims == (layers, width, mlp_dim, heads):
            return {"type": f"vit_{size}", "dropout": 0.1}
    return {"type": "vit", "width": width, "layers": layers, "mlp_dim": mlp_dim, "heads": heads, "dropout": 0.1}


def _positions(r: _Reader, table_prefix: str, axes: tuple[str, ...], target: str) -> list[Rule]:
    rules = [r.rule(f"{table_prefix}{axis}_position_embeddings/embeddings", f"{target}positions.axes.{i}")
             for i, axis in enumerate(axes)]
    return rules + [r.rule(f"{table_prefix}layernorm/{tf}", f"{target}positions.norm.{name}")
                    for tf, name in LN_NAMES.items()]


def _video_tokenizer(r: _Reader, kernel: str, table_prefix: str, target: str) -> tuple[dict, list[Rule]]:
    kt, kh, kw, channels, _ = r.shape(f"{kernel}/kernel")
    grid = [r.shape(f"{table_prefix}{axis}_position_embeddings/embeddings")[0]
            for axis in ("temporal", "vertical", "horizontal")]
    node = {"type": "video_patches", "patch_size": [kt, kh, kw], "frames": grid[0] * kt,
            "size": [grid[1] * kh, grid[2] * kw], "channels": channels, "dropout": 0.1}
    rules = [r.rule(f"{kernel}/kernel", f"{target}projection.weight", "patch_kernel"),
             r.rule(f"{kernel}/bias", f"{target}projection.bias")]
    return node, rules + _positions(r, table_prefix, ("temporal", "vertical", "horizontal"), target)


def _audio_tokenizer(r: _Reader, kernel: str, table_prefix: str, target: str) -> tuple[dict, list[Rule]]:
    patch, channels, _ = r.shape(f"{kernel}/kernel")
    if channels != 1:
        raise UserError(f"the audio patch kernel {r.prefix}{kernel}/kernel has {channels} input channels; "
                        f"vatt's waveform tokenizer reads mono audio")
    buckets = r.shape(f"{table_prefix}temporal_position_embeddings/embeddings")[0]
    node = {"type": "waveform_patches", "patch_size": patch, "samples": buckets * patch, "dropout": 0.1}
    rules = [r.rule(f"{kernel}/kernel", f"{target}projection.weight", "patch_kernel"),
             r.rule(f"{kernel}/bias", f"{target}projection.bias")]
    return node, rules + _positions(r, table_prefix, ("temporal",), target)


def _t5(r: _Reader, target: str, hyper: Hyper) -> tuple[dict, list[Rule]]:
    """The release's T5 text encoder (``base_lm``) → vatt's ``t5_text``."""
    layers = r.layers("base_lm/layers")
    width, mlp_dim = r.shape("base_lm/layers/0/feed_forward/mlp/wi/kernel")
    bias_table = "base_lm/layers/0/self_attention/attention/relative_attention_bias/embeddings"
    buckets, heads = r.shape(bias_table)
    if hyper.heads.get("text", heads) != heads:
        raise UserError(f"--heads text={hyper.heads['text']}, but the checkpoint's relative position bias "
                        f"{r.prefix + bias_table} has {heads} heads")
    distance = hyper.max_relative_distance
    if distance is None:
        if width not in RELEASED_HEADS:
            raise UserError(f"the text transformer is {width} wide, not a released width: T5's maximum "
                            f"relative distance is not in the checkpoint; give it with --max-relative-distance N")
        distance = RELEASED_MAX_DISTANCE
    rules = [r.rule(bias_table, f"{target}relative_bias.weight"),
             r.rule("base_lm/final_layer_norm/weight", f"{target}final_norm.weight")]
    for n in range(layers):
        src, dst = f"base_lm/layers/{n}/", f"{target}blocks.{n}."
        rules.append(r.rule(f"{src}self_attention/layer_norm/weight", f"{dst}attention_norm.weight"))
        for proj, name in zip("qkvo", ("query", "key", "value", "out")):
            rules.append(r.rule(f"{src}self_attention/attention/{proj}/kernel", f"{dst}attention.{name}.weight",
                                "transpose"))
        rules += [r.rule(f"{src}feed_forward/layer_norm/{tf}", f"{dst}mlp_norm.{name}") for tf, name in LN_NAMES.items()]
        rules.append(r.rule(f"{src}feed_forward/mlp/wi/kernel", f"{dst}mlp_in.weight", "transpose"))
        rules.append(r.rule(f"{src}feed_forward/mlp/wo/kernel", f"{dst}mlp_out.weight", "transpose"))
    node = {"type": "t5_text", "width": width, "layers": layers, "mlp_dim": mlp_dim, "heads": heads,
            "num_buckets": buckets, "max_distance": distance, "dropout": 0.1}
    if (width, layers, mlp_dim, heads, buckets, distance) == (512, 6, 2048, 8, 32, 64):
        node = {"type": "t5_small", "dropout": 0.1}
    return node, rules


def _fac_head(shapes: dict, video: int, audio: int, text: int) -> tuple[dict[str, dict], list[Rule]]:
    r = _Reader(shapes, HEAD, "FAC head")
    va = r.shape("hid_to_va/dense/kernel")[1]
    vt = r.shape("va_to_vat/dense/kernel")[1]
    expected = {"vid_to_hid/kernel": (video, va), "aud_to_va/kernel": (audio, va), "txt_to_vat/kernel": (text, vt)}
    for name, shape in expected.items():
        if r.shape(name) != shape:
            raise UserError(f"{HEAD}{name} is {list(r.shape(name))}; vatt's FAC head needs {list(shape)} here")
    rules = [r.rule("vid_to_hid/kernel", "heads.video.va_hidden.weight", "transpose"),
             r.rule("hid_to_va/dense/kernel", "heads.video.va_out.weight", "transpose"),
             r.rule("va_to_vat/dense/kernel", "heads.video.vt_out.weight", "transpose")]
    for bn, target in (("hid_to_va/pre_bn", "va_hidden_norm"), ("hid_to_va/bn", "va_norm"), ("va_to_vat/bn", "vt_norm")):
        rules += [r.rule(f"{bn}/{tf}", f"heads.video.{target}.{name}") for tf, name in BN_NAMES.items()]
    for src, modality in (("aud_to_va", "audio"), ("txt_to_vat", "text")):
        rules.append(r.rule(f"{src}/kernel", f"heads.{modality}.projection.weight", "transpose"))
        rules.append(r.rule(f"{src}/bias", f"heads.{modality}.projection.bias"))
    heads = {"video": {"type": "fac_video", "va_dim": va, "vt_dim": vt},
             "audio": {"type": "linear", "dim": va, "space": "va"},
             "text": {"type": "linear", "dim": vt, "space": "vt"}}
    return heads, rules


def _tx_fac(shapes: dict, hyper: Hyper) -> Plan:
    rules, modalities = [], {}
    video = _Reader(shapes, TX_FAC + "vid_backbone/_base/", "video backbone")
    tokenizer, part = _video_tokenizer(video, "voxel_to_patch", "pos_embedding_lookup/", "towers.video.tokenizer.")
    backbone, layers = _vit(video, "towers.video.backbone.", hyper, "video")
    rules += part + layers + [video.rule("agg_embedding", "towers.video.tokenizer.agg")]
    modalities["video"] = {"tokenizer": tokenizer, "backbone": backbone}

    audio = _Reader(shapes, TX_FAC + "aud_backbone/_base/", "audio backbone")
    tokenizer, part = _audio_tokenizer(audio, "wave_to_patch", "pos_embedding_lookup/", "towers.audio.tokenizer.")
    backbone, layers = _vit(audio, "towers.audio.backbone.", hyper, "audio")
    rules += part + layers + [audio.rule("agg_embedding", "towers.audio.tokenizer.agg")]
    modalities["audio"] = {"tokenizer": tokenizer, "backbone": backbone}

    text = _Reader(shapes, TX_FAC + "txt_backbone/", "text backbone")
    vocab, embed_dim = text.shape("embedding/embeddings")
    backbone, layers = _t5(text, "towers.text.backbone.", hyper)
    rules += layers + [text.rule("embedding/embeddings", "towers.text.tokenizer.embedding.weight"),
                       text.rule("agg_embedding", "towers.text.tokenizer.agg"),
                       text.rule("pre_proj/kernel", "towers.text.tokenizer.projection.weight", "transpose")]
    modalities["text"] = {"tokenizer": {"type": "words", "vocab_size": vocab, "embed_dim": embed_dim,
                                        "max_words": 16}, "backbone": backbone}
    widths = [video.shape("agg_embedding")[0], audio.shape("agg_embedding")[0], text.shape("pre_proj/kernel")[1]]
    heads, head_rules = _fac_head(shapes, *widths)
    for name, node in heads.items():
        modalities[name]["head"] = node
    return Plan("tx_fac", {"modalities": modalities}, rules + head_rules)


def _ut_fac(shapes: dict, hyper: Hyper) -> Plan:
    r = _Reader(shapes, UT_FAC, "modality-agnostic backbone")
    backbone, rules = _vit(r, "towers.video.backbone.", hyper, "shared")
    modalities = {}
    video, part = _video_tokenizer(r, "raw_to_embeddings/video", "pos_embedding_lookup/video/",
                                   "towers.video.tokenizer.")
    modalities["video"], rules = {"tokenizer": {**video, "pre_projection": True}}, rules + part
    audio, part = _audio_tokenizer(r, "raw_to_embeddings/audio", "pos_embedding_lookup/audio/",
                                   "towers.audio.tokenizer.")
    modalities["audio"], rules = {"tokenizer": {**audio, "pre_projection": True}}, rules + part
    vocab, embed_dim = r.shape("raw_to_embeddings/text/embeddings")
    max_words = r.shape("pos_embedding_lookup/text/temporal_position_embeddings/embeddings")[0]
    modalities["text"] = {"tokenizer": {"type": "words", "vocab_size": vocab, "embed_dim": embed_dim,
                                        "max_words": max_words, "pre_projection": True}}
    rules += [r.rule("raw_to_embeddings/text/embeddings", "towers.text.tokenizer.embedding.weight")]
    rules += _positions(r, "pos_embedding_lookup/text/", ("temporal",), "towers.text.tokenizer.")
    widths = []
    for name, short in (("video", "vid"), ("audio", "aud"), ("text", "txt")):
        rules.append(r.rule(f"{short}_agg_embedding", f"towers.{name}.tokenizer.agg"))
        into = "projection" if name == "text" else "pre_projection"
        rules.append(r.rule(f"pre_proj/{name}/kernel", f"towers.{name}.tokenizer.{into}.weight", "transpose"))
        rules.append(r.rule(f"pre_proj/{name}/bias", f"towers.{name}.tokenizer.{into}.bias"))
        rules.append(r.rule(f"post_proj/{name}/kernel", f"towers.{name}.post_projection.0.weight", "transpose"))
        rules.append(r.rule(f"post_proj/{name}/bias", f"towers.{name}.post_projection.0.bias"))
        widths.append(r.shape(f"post_proj/{name}/kernel")[1])
        modalities[name]["post_projection"] = widths[-1]
        modalities[name]["backbone"] = None
    heads, head_rules = _fac_head(shapes, *widths)
    for name, node in heads.items():
        modalities[name]["head"] = node
    return Plan("ut_fac", {"shared_backbone": backbone, "modalities": modalities}, rules + head_rules)


def _classifier(shapes: dict, hyper: Hyper) -> Plan:
    r = _Reader(shapes, CLASSIFIER, "classifier's backbone")
    if r.has("voxel_to_patch/kernel"):
        modality, (tokenizer, rules) = "video", _video_tokenizer(r, "voxel_to_patch", "pos_embedding_lookup/",
                                                                  "towers.video.tokenizer.")
    else:
        modality, (tokenizer, rules) = "audio", _audio_tokenizer(r, "wave_to_patch", "pos_embedding_lookup/",
                                                                  "towers.audio.tokenizer.")
    backbone, layers = _vit(r, f"towers.{modality}.backbone.", hyper, modality)
    rules += layers + [r.rule("agg_embedding", f"towers.{modality}.tokenizer.agg")]
    cls = _Reader(shapes, MODEL + "_ops/cls/", "classifier")
    width, num_classes = cls.shape("kernel")
    rules += [cls.rule("kernel", f"heads.{modality}.linear.weight", "transpose"),
              cls.rule("bias", f"heads.{modality}.linear.bias")]
    model = {"modality": modality, "num_classes": num_classes, "tokenizer": tokenizer, "backbone": backbone}
    return Plan(f"{modality}_classifier", model, rules, num_classes)


def plan(variables: dict[str, tuple[int, ...]], hyper: Hyper | None = None) -> Plan:
    """The conversion plan of a checkpoint's variable list (keys with or without ``/.ATTRIBUTES/...``)."""
    hyper = hyper or Hyper()
    shapes = {strip(k): tuple(v) for k, v in variables.items() if is_model_variable(k)}
    if any(k.startswith(UT_FAC) for k in shapes):
        result = _ut_fac(shapes, hyper)
    elif any(k.startswith(TX_FAC + "vid_backbone/") for k in shapes):
        result = _tx_fac(shapes, hyper)
    elif any(k.startswith(CLASSIFIER) for k in shapes) and any(k.startswith(MODEL + "_ops/cls/") for k in shapes):
        result = _classifier(shapes, hyper)
    else:
        raise UserError("not a VATT checkpoint vatt converts (tx_fac, ut_fac, or a ViT/WaT classifier); its model "
                        f"variables are under: {_groups(shapes, '') or 'nothing (no model/ variables)'}")
    unmapped = sorted(set(shapes) - {rule.source for rule in result.rules})
    if unmapped:
        raise UserError(f"{len(unmapped)} model variable(s) have no place in vatt's {result.kind} model (an "
                        f"architecture vatt doesn't have?): " + "; ".join(unmapped[:12])
                        + (f" ... and {len(unmapped) - 12} more" if len(unmapped) > 12 else ""))
    return result


def _groups(shapes: dict, prefix: str, depth: int = 3) -> str:
    """Counts of the variables under ``prefix`` by their next ``depth`` path parts."""
    counts: dict[str, int] = {}
    for key in shapes:
        if key.startswith(prefix):
            group = "/".join(key[len(prefix):].split("/")[:depth])
            counts[group] = counts.get(group, 0) + 1
    return ", ".join(f"{group} ({n})" for group, n in sorted(counts.items())[:12])
