"""Latent model packages (manifest kind "latent"): validation of model.json and loading.

A package folder holds model.json, the tokenizer model and three TorchScript modules (text
encoder, denoiser, VAE decoder); python/README.md describes the format. The rules
checked here are the manifest's own; the C++ loader applies the same ones.
"""

import json
import math
import os
from typing import Any, Dict, List

import torch

from tpdiff_kit import method
from tpdiff_kit.tokenizer import SentencePieceTokenizer

MAX_STAGES = 5
MAX_STEPS_PER_STAGE = 1000
DTYPES = ("float32", "float16", "bfloat16")

_TOP_FIELDS = {"name", "kind", "description", "frames", "height", "width", "fps", "stages",
               "boundaries", "default_stage_steps", "default_guidance_scale", "schedule",
               "tokenizer", "text_encoder", "denoiser", "vae"}
_REQUIRED_TOP = _TOP_FIELDS - {"description", "boundaries"}
_SCHEDULE_FIELDS = {
    "flow_matching": {"type", "shift", "timestep_scale", "prediction"},
    "vp": {"type", "prediction", "beta_schedule", "beta_start", "beta_end",
           "num_train_timesteps"},
}
_TOKENIZER_FIELDS = {"kind", "file", "max_tokens"}
_TEXT_ENCODER_FIELDS = {"file", "dim", "dtype"}
_DENOISER_FIELDS = {"file", "dtype"}
_VAE_FIELDS = {"file", "latent_channels", "temporal_factor", "spatial_factor",
               "causal_first_frame", "scale", "shift", "dtype"}


class ManifestError(ValueError):
    """A manifest rule is broken; the message names the field and the limit."""


def _fields(obj: Any, where: str, allowed: set, required: set) -> Dict[str, Any]:
    if not isinstance(obj, dict):
        raise ManifestError(f"{where}: must be an object")
    for key in obj:
        if key not in allowed:
            raise ManifestError(f"{where}.{key}: unknown field" if where else
                                f"{key}: unknown field")
    for key in sorted(required):
        if key not in obj:
            raise ManifestError(f"{where}.{key}: required" if where else f"{key}: required")
    return obj


def _int(value: Any, name: str, lo: int, hi: int = 1 << 30) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ManifestError(f"{name}: {value!r} must be an integer")
    if not lo <= value <= hi:
        raise ManifestError(f"{name}: {value} is outside {lo}..{hi}")
    return value


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ManifestError(f"{name}: {value!r} must be a finite number")
    return float(value)


def _file(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value or os.path.isabs(value) or ".." in value.split("/"):
        raise ManifestError(f"{name}: {value!r} must be a file name inside the package")
    return value


def _dtype(obj: Dict[str, Any], name: str) -> None:
    if obj.get("dtype", "float32") not in DTYPES:
        raise ManifestError(f"{name}.dtype: {obj['dtype']!r} is not one of {', '.join(DTYPES)}")


def _channel_values(value: Any, name: str, channels: int, nonzero: bool) -> List[float]:
    values = value if isinstance(value, list) else [value]
    if isinstance(value, list) and len(values) != channels:
        raise ManifestError(f"{name}: {len(values)} values, one or vae.latent_channels "
                            f"({channels}) required")
    out = [_number(v, name) for v in values]
    if nonzero and any(v == 0.0 for v in out):
        raise ManifestError(f"{name}: must not be 0")
    return out


def validate_manifest(m: Dict[str, Any]) -> None:
    """Raises ManifestError naming the field and the limit of the first broken rule."""
    _fields(m, "", _TOP_FIELDS, _REQUIRED_TOP)
    if m["kind"] != "latent":
        raise ManifestError(f"kind: {m['kind']!r} is not 'latent'")
    if not isinstance(m["name"], str) or not m["name"]:
        raise ManifestError("name: must be a non-empty string")
    if "description" in m and not isinstance(m["description"], str):
        raise ManifestError("description: must be a string")

    vae = _fields(m["vae"], "vae", _VAE_FIELDS, _VAE_FIELDS - {"dtype"})
    _file(vae["file"], "vae.file")
    channels = _int(vae["latent_channels"], "vae.latent_channels", 1, 4096)
    tf = _int(vae["temporal_factor"], "vae.temporal_factor", 1, 64)
    sf = _int(vae["spatial_factor"], "vae.spatial_factor", 1, 256)
    if not isinstance(vae["causal_first_frame"], bool):
        raise ManifestError("vae.causal_first_frame: must be true or false")
    _channel_values(vae["scale"], "vae.scale", channels, nonzero=True)
    _channel_values(vae["shift"], "vae.shift", channels, nonzero=False)
    _dtype(vae, "vae")

    stages = _int(m["stages"], "stages", 1, MAX_STAGES)
    frames = _int(m["frames"], "frames", 1)
    causal = vae["causal_first_frame"]
    stride = 1 << (stages - 1)
    if causal:
        n, rule = (frames - 1) // tf, f"1 + {tf} * N"
        ok = (frames - 1) % tf == 0
    else:
        n, rule = frames // tf, f"{tf} * N"
        ok = frames % tf == 0
    if not ok or n < stride or n % stride != 0:
        raise ManifestError(f"frames: {frames} must be {rule} with N a positive multiple of "
                            f"2^(stages-1) = {stride}")
    for key in ("height", "width"):
        value = _int(m[key], key, 1, 8192)
        if value % sf != 0:
            raise ManifestError(f"{key}: {value} is not divisible by vae.spatial_factor {sf}")
    if _number(m["fps"], "fps") <= 0:
        raise ManifestError(f"fps: {m['fps']} must be > 0")

    steps = m["default_stage_steps"]
    if not isinstance(steps, list) or len(steps) != stages:
        raise ManifestError(f"default_stage_steps: one value per stage ({stages}) required")
    for i, n_steps in enumerate(steps):
        _int(n_steps, f"default_stage_steps[{i}]", 1, MAX_STEPS_PER_STAGE)
    boundaries = m.get("boundaries", [])
    if not isinstance(boundaries, list):
        raise ManifestError("boundaries: must be a list")
    if boundaries:
        if len(boundaries) != stages - 1:
            raise ManifestError(f"boundaries: {len(boundaries)} values given, {stages - 1} "
                                f"required for {stages} stages")
        prev = 1.0
        for b in boundaries:
            if not 0.0 < _number(b, "boundaries") < prev:
                raise ManifestError(f"boundaries: must be strictly decreasing inside (0, 1), got "
                                    f"{boundaries}")
            prev = b
    if _number(m["default_guidance_scale"], "default_guidance_scale") < 0:
        raise ManifestError(f"default_guidance_scale: {m['default_guidance_scale']} must be >= 0")

    sch = m["schedule"]
    if not isinstance(sch, dict) or sch.get("type") not in _SCHEDULE_FIELDS:
        raise ManifestError(f"schedule.type: {sch.get('type') if isinstance(sch, dict) else sch!r}"
                            " is not one of flow_matching, vp")
    _fields(sch, "schedule", _SCHEDULE_FIELDS[sch["type"]], {"type", "prediction"})
    if sch["prediction"] not in method.PREDICTIONS[sch["type"]]:
        raise ManifestError(f"schedule.prediction: {sch['prediction']!r} is not one of "
                            f"{', '.join(method.PREDICTIONS[sch['type']])} for {sch['type']}")
    if sch["type"] == "flow_matching":
        if _number(sch.get("shift", 1.0), "schedule.shift") < 1.0:
            raise ManifestError(f"schedule.shift: {sch['shift']} must be >= 1")
        if _number(sch.get("timestep_scale", 1000.0), "schedule.timestep_scale") <= 0:
            raise ManifestError(f"schedule.timestep_scale: {sch['timestep_scale']} must be > 0")
    else:
        if sch.get("beta_schedule", "scaled_linear") not in ("scaled_linear", "linear"):
            raise ManifestError(f"schedule.beta_schedule: {sch['beta_schedule']!r} is not one "
                                "of scaled_linear, linear")
        lo = _number(sch.get("beta_start", 0.00085), "schedule.beta_start")
        hi = _number(sch.get("beta_end", 0.012), "schedule.beta_end")
        if not 0.0 < lo <= hi < 1.0:
            raise ManifestError(f"schedule.beta_start, schedule.beta_end: {lo}, {hi} must satisfy "
                                "0 < beta_start <= beta_end < 1")
        _int(sch.get("num_train_timesteps", 1000), "schedule.num_train_timesteps", 2, 100000)

    tok = _fields(m["tokenizer"], "tokenizer", _TOKENIZER_FIELDS, _TOKENIZER_FIELDS)
    if tok["kind"] not in ("sentencepiece", "words"):
        raise ManifestError(f"tokenizer.kind: {tok['kind']!r} is not one of sentencepiece, words")
    _file(tok["file"], "tokenizer.file")
    _int(tok["max_tokens"], "tokenizer.max_tokens", 1, 4096)

    enc = _fields(m["text_encoder"], "text_encoder", _TEXT_ENCODER_FIELDS, {"file", "dim"})
    _file(enc["file"], "text_encoder.file")
    _int(enc["dim"], "text_encoder.dim", 1, 65536)
    _dtype(enc, "text_encoder")
    den = _fields(m["denoiser"], "denoiser", _DENOISER_FIELDS, {"file"})
    _file(den["file"], "denoiser.file")
    _dtype(den, "denoiser")


class LatentPackage:
    """A loaded latent package on the CPU in float32 (what the reference sampler uses)."""

    def __init__(self, directory: str):
        self.directory = directory
        path = os.path.join(directory, "model.json")
        with open(path, encoding="utf-8") as f:
            self.manifest = json.load(f)
        validate_manifest(self.manifest)
        m = self.manifest
        vae = m["vae"]
        self.name = m["name"]
        self.schedule = method.schedule_from_manifest(m["schedule"])
        self.prediction = m["schedule"]["prediction"]
        self.causal = vae["causal_first_frame"]
        self.latent_channels = vae["latent_channels"]
        self.temporal_factor = vae["temporal_factor"]
        self.spatial_factor = vae["spatial_factor"]
        self.latent_frames = method.latent_frame_count(m["frames"], self.temporal_factor,
                                                       self.causal)
        self.latent_height = m["height"] // self.spatial_factor
        self.latent_width = m["width"] // self.spatial_factor
        c = self.latent_channels
        self.scale = torch.tensor(_channel_values(vae["scale"], "vae.scale", c, True),
                                  dtype=torch.float32).expand(c).reshape(1, c, 1, 1, 1)
        self.shift = torch.tensor(_channel_values(vae["shift"], "vae.shift", c, False),
                                  dtype=torch.float32).expand(c).reshape(1, c, 1, 1, 1)
        if m["tokenizer"]["kind"] != "sentencepiece":
            raise ManifestError("tokenizer.kind: the Python kit reads sentencepiece tokenizers")
        self.tokenizer = SentencePieceTokenizer(os.path.join(directory, m["tokenizer"]["file"]),
                                                m["tokenizer"]["max_tokens"])
        self.text_encoder = self._load(m["text_encoder"]["file"])
        self.denoiser = self._load(m["denoiser"]["file"])
        self.vae_decoder = self._load(vae["file"])

    def _load(self, file: str) -> torch.jit.ScriptModule:
        module = torch.jit.load(os.path.join(self.directory, file), map_location="cpu")
        module.eval()
        return module

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Sampler latents -> video in [-1, 1]: the decoder sees z / scale + shift."""
        return self.vae_decoder(z / self.scale + self.shift)
