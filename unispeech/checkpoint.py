"""Hugging Face checkpoint folders: find (local or hub), read weights, map keys, save."""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from pathlib import Path
from typing import Callable

import torch

from .config import ModelConfig
from .model import CTCModel, build_model
from .vocab import Vocabulary

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
HUB_PATTERNS = ["*.json", "*.safetensors", "*.md"]
BACKBONE_PREFIXES = {"unispeech": "unispeech.", "wav2vec2": "wav2vec2."}
# Pretraining heads, ignored when loading a CTC model from a pretraining checkpoint.
PRETRAINING_PREFIXES = ("quantizer.", "project_q.", "project_hid.", "ctc_proj.", "dropout_features")
POS_CONV = "backbone.encoder.pos_conv_embed.conv."
POS_CONV_ALIASES = {"parametrizations.weight.original0": "weight_g", "parametrizations.weight.original1": "weight_v"}


@dataclasses.dataclass(frozen=True)
class AudioSettings:
    """preprocessor_config.json: what the model expects of its input."""

    sampling_rate: int = 16000
    do_normalize: bool = True

    @classmethod
    def from_folder(cls, folder: Path) -> "AudioSettings":
        path = folder / "preprocessor_config.json"
        if not path.is_file():
            return cls()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e})") from e
        return cls(sampling_rate=int(data.get("sampling_rate", 16000)), do_normalize=bool(data.get("do_normalize", True)))

    def to_json(self) -> str:
        return json.dumps({
            "do_normalize": self.do_normalize, "feature_extractor_type": "Wav2Vec2FeatureExtractor",
            "feature_size": 1, "padding_side": "right", "padding_value": 0.0,
            "processor_class": "Wav2Vec2Processor", "return_attention_mask": True,
            "sampling_rate": self.sampling_rate,
        }, indent=2)


def resolve_folder(name_or_path: str | os.PathLike) -> Path:
    """A local folder as is; otherwise a hub id, downloaded (or taken from the cache) with huggingface_hub."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise ValueError(f"{name_or_path}: not a folder (pass the model folder holding config.json)")
    text = str(name_or_path)
    if text.startswith((".", "/", "~")) or text.count("/") != 1:
        raise ValueError(f"{name_or_path}: no such model folder, and not a hub id of the form 'owner/name'")
    try:
        from huggingface_hub import snapshot_download
        return Path(snapshot_download(repo_id=text, allow_patterns=HUB_PATTERNS + ["*.bin"]))
    except Exception as e:  # offline, unknown repo, gated: every failure gets the same advice
        raise RuntimeError(
            f"could not fetch {text!r} from the Hugging Face hub ({type(e).__name__}: {str(e).splitlines()[0][:200]}). "
            f"If you have the files, pass the local folder instead: --model /path/to/folder "
            f"(download it elsewhere with: huggingface-cli download {text} --local-dir FOLDER)") from e


def read_state_dict(folder: Path, dtype: torch.dtype | Callable[[str], torch.dtype] | None = None
                    ) -> dict[str, torch.Tensor]:
    """All tensors of a folder's weights: safetensors first, then pytorch_model.bin; sharded or not.

    With `dtype` (a type, or a function of the key), floating tensors are converted one at a time as they
    are read, so memory never holds the checkpoint in two precisions at once.
    """
    for name in WEIGHT_FILES:
        path = folder / name
        if not path.is_file():
            continue
        files = [path]
        if name.endswith(".index.json"):
            index = json.loads(path.read_text(encoding="utf-8"))
            files = [folder / f for f in sorted(set(index["weight_map"].values()))]
        state: dict[str, torch.Tensor] = {}
        for f in files:
            state.update(_read_weight_file(f, dtype))
        return state
    raise ValueError(f"{folder}: no weights (expected one of {', '.join(WEIGHT_FILES)})")


def _read_weight_file(path: Path, dtype) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise ValueError(f"{path}: weight shard listed in the index is missing")

    kept = []  # keys whose tensors already had their final type

    def convert(key: str, t: torch.Tensor) -> torch.Tensor:
        target = dtype(key) if callable(dtype) else dtype
        if target is None or not t.is_floating_point() or t.dtype == target:
            kept.append(key)
            return t
        return t.to(target)

    try:
        if path.suffix == ".safetensors":
            from safetensors import safe_open
            with safe_open(str(path), framework="pt") as f:  # memory-mapped: tensors are read one by one
                state = {k: convert(k, f.get_tensor(k)) for k in f.keys()}
        else:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            state = {k: convert(k, v) for k, v in state.items()}
    except Exception as e:
        raise ValueError(f"{path}: cannot read weights ({type(e).__name__}: {e})") from e
    if len(kept) < len(state):
        # A tensor that kept its type may still point into the memory-mapped file, which would keep all
        # of the file's pages resident (and counted in RSS) beside the converted copies: copy those too.
        state.update({k: state[k].clone() for k in kept})
    return state


def from_hf_keys(state: dict[str, torch.Tensor], model_type: str) -> dict[str, torch.Tensor]:
    """transformers key names -> ours (`unispeech.`/`wav2vec2.` -> `backbone.`, weight-norm aliases)."""
    prefix = BACKBONE_PREFIXES[model_type]
    out = {}
    for key, value in state.items():
        if key.startswith(PRETRAINING_PREFIXES):
            continue
        if key.startswith(prefix):
            key = "backbone." + key[len(prefix):]
        if key.startswith(POS_CONV):
            tail = key[len(POS_CONV):]
            key = POS_CONV + POS_CONV_ALIASES.get(tail, tail)
        out[key] = value
    if POS_CONV + "weight" in out:  # a checkpoint saved with weight norm removed
        v = out.pop(POS_CONV + "weight")
        out[POS_CONV + "weight_v"], out[POS_CONV + "weight_g"] = v, v.norm(dim=(0, 1), keepdim=True)
    return out


def to_hf_keys(state: dict[str, torch.Tensor], model_type: str) -> dict[str, torch.Tensor]:
    prefix = BACKBONE_PREFIXES[model_type]
    renamed = {v: k for k, v in POS_CONV_ALIASES.items()}
    out = {}
    for key, value in state.items():
        if key.startswith(POS_CONV):
            tail = key[len(POS_CONV):]
            key = POS_CONV + renamed.get(tail, tail)
        if key.startswith("backbone."):
            key = prefix + key[len("backbone."):]
        out[key] = value.detach().contiguous()
    return out


def load_weights(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str, assign: bool = False) -> None:
    """Copy `state` into `model`, refusing missing or unexpected tensors and shape mismatches."""
    own = model.state_dict()
    if "lm_head.weight" in own and "lm_head.weight" not in state:
        raise ValueError(f"{source}: the weights have no CTC head (lm_head); this looks like a pretraining "
                         "checkpoint: fine-tune it first (unispeech finetune --init ...)")
    optional = {"backbone.masked_spec_embed"}
    missing = sorted(set(own) - set(state) - optional)
    unexpected = sorted(set(state) - set(own) - optional)
    if missing or unexpected:
        detail = "; ".join(part for part in (
            f"missing {len(missing)}: {', '.join(missing[:5])}" if missing else "",
            f"unexpected {len(unexpected)}: {', '.join(unexpected[:5])}" if unexpected else "") if part)
        raise ValueError(f"{source}: weights do not match config.json ({detail})")
    for key, value in state.items():
        if key in own and own[key].shape != value.shape:
            raise ValueError(f"{source}: {key} has shape {tuple(value.shape)}, config.json implies {tuple(own[key].shape)}")
    model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False, assign=assign)


def load_folder(folder: Path, dtype: torch.dtype = torch.float32,
                feature_dtype: torch.dtype | None = None) -> tuple[CTCModel, Vocabulary, AudioSettings]:
    """A complete CTC checkpoint folder -> model in eval mode (encoder in `dtype`, the CNN feature encoder in
    `feature_dtype` (default: `dtype`); CTC head and transformer layer norms in float32), its vocabulary and
    audio settings. The weights are read straight into their final precision."""
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise ValueError(f"{folder}: no config.json (is this a model folder?)")
    config = ModelConfig.from_json(config_path)
    vocab = Vocabulary.from_folder(folder, blank_id=config.pad_token_id, head_size=config.vocab_size)

    def final_dtype(key: str) -> torch.dtype:  # HF and our key names alike
        if key.startswith("lm_head.") or (".encoder." in f".{key}" and "layer_norm" in key):
            # fp32 layer norms make the residual stream add in fp32: rounding does not pile up over the layers
            return torch.float32
        return feature_dtype if feature_dtype and "feature_extractor." in key else dtype

    state = from_hf_keys(read_state_dict(folder, final_dtype), config.model_type)
    with torch.device("meta"):
        model = build_model(config)
    if "backbone.masked_spec_embed" in model.state_dict() and "backbone.masked_spec_embed" not in state:
        state["backbone.masked_spec_embed"] = torch.rand(config.hidden_size)
    state = {k: v.to(final_dtype(k)) for k, v in state.items()}
    load_weights(model, state, str(folder), assign=True)
    return model.eval(), vocab, AudioSettings.from_folder(folder)


def save_folder(folder: str | os.PathLike, model: CTCModel, vocab: Vocabulary, audio: AudioSettings) -> Path:
    """Write a folder that transformers' AutoModelForCTC / AutoProcessor and `load_model` read.

    Every file is written to a temporary name and renamed into place, so an interrupted save never
    leaves a half-written file under the final name.
    """
    folder = Path(folder)
    config = model.config
    hf_config = config.to_hf_dict()
    hf_config.update(pad_token_id=vocab.blank_id, vocab_size=len(vocab),
                     architectures=["UniSpeechForCTC" if config.model_type == "unispeech" else "Wav2Vec2ForCTC"])
    texts = {"config.json": json.dumps(hf_config, indent=2, ensure_ascii=False),
             "preprocessor_config.json": audio.to_json(), **vocab.files()}
    tensors = to_hf_keys({k: v.float() for k, v in model.state_dict().items()}, config.model_type)
    return write_folder(folder, tensors, texts)


def write_folder(folder: Path, tensors: dict[str, torch.Tensor], texts: dict[str, str]) -> Path:
    """model.safetensors plus text files, each written to a temporary name and renamed into place."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    _atomic_write(folder / "model.safetensors", lambda p: save_file(tensors, p, metadata={"format": "pt"}))
    for name, text in texts.items():
        _atomic_write(folder / name, lambda p, t=text: Path(p).write_text(t + "\n", encoding="utf-8"))
    return folder


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; a saved model is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
