"""Loading Hugging Face models: a local folder, a GGUF file (dequantized once and cached as
safetensors) or a hub id. Safetensors only (no pickle), ``trust_remote_code`` off unless
asked, and failures become one clear sentence instead of a traceback.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from convergent.errors import ConvergentError
from convergent.io import cache_root


@dataclass(frozen=True)
class ModelRef:
    """Where a model comes from: ``folder``, ``gguf`` (folder + file name) or ``hub``."""

    kind: str
    location: str
    gguf_file: str | None = None
    revision: str | None = None

    @property
    def name(self) -> str:
        if self.kind == "gguf":
            return Path(self.gguf_file or "").stem
        return self.location if self.kind == "hub" else Path(self.location).name


def resolve_ref(spec: str, gguf_file: str | None = None, revision: str | None = None) -> ModelRef:
    """Classify ``spec``: a ``.gguf`` file, a folder (with ``config.json`` or a GGUF), a hub id."""
    path = Path(spec).expanduser()
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ConvergentError(f"{spec}: a model file must be .gguf (or give its folder)")
        return ModelRef("gguf", str(path.parent), path.name, revision)
    if path.is_dir():
        if gguf_file:
            if not (path / gguf_file).is_file():
                raise ConvergentError(f"{spec}: has no GGUF file {gguf_file!r}")
            return ModelRef("gguf", str(path), gguf_file, revision)
        if not (path / "config.json").is_file():
            ggufs = sorted(p.name for p in path.glob("*.gguf"))
            hint = f" (it has {', '.join(ggufs)}: pass gguf_file)" if ggufs else ""
            raise ConvergentError(f"{spec}: not a Hugging Face model folder (no config.json){hint}")
        return ModelRef("folder", str(path), None, revision)
    looks_like_id = spec.count("/") == 1 and not spec.startswith((".", "/", "~"))
    if looks_like_id or (spec and "/" not in spec and not path.suffix):
        return ModelRef("hub", spec, gguf_file, revision)
    raise ConvergentError(f"{spec}: no such model folder or file")


@functools.lru_cache(maxsize=64)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: str | Path) -> str:
    """sha256 of a file (memoized per path, size and modification time)."""
    stat = os.stat(path)
    return _file_sha256(str(path), stat.st_size, stat.st_mtime_ns)


def weights_sha256(folder: str | Path) -> str | None:
    """One sha256 over the folder's safetensors files (names and hashes, sorted)."""
    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        return None
    digest = hashlib.sha256()
    for file in files:
        digest.update(f"{file.name}:{file_sha256(file)}\n".encode())
    return digest.hexdigest()


def _check_online(ref: ModelRef) -> None:
    """Fail in one sentence, fast, when a hub model is neither cached nor reachable."""
    from huggingface_hub import constants, try_to_load_from_cache

    cached = try_to_load_from_cache(ref.location, "config.json", revision=ref.revision)
    if isinstance(cached, str):
        return
    if constants.HF_HUB_OFFLINE:
        raise ConvergentError(f"{ref.location}: not in the local Hugging Face cache and "
                              "HF_HUB_OFFLINE is set")
    import socket
    from urllib.parse import urlparse

    host = urlparse(constants.ENDPOINT).hostname or ""
    try:
        socket.getaddrinfo(host, 443)
    except OSError:
        raise ConvergentError(
            f"{ref.location}: could not be downloaded (offline?) and is not in the local "
            "Hugging Face cache; give a local folder or .gguf file instead"
        ) from None


def _model_class(config: Any) -> Any:
    import transformers
    from transformers import AutoModel, AutoModelForCausalLM

    archs = getattr(config, "architectures", None) or []
    for arch in archs:  # multimodal checkpoints (Llama 4): their own class, text inside
        if arch.endswith("ForConditionalGeneration") and hasattr(transformers, arch):
            return getattr(transformers, arch)
    causal = any(a.endswith("ForCausalLM") or a.endswith("LMHeadModel") for a in archs)
    return AutoModelForCausalLM if causal or getattr(config, "is_decoder", False) else AutoModel


def require_trust(location: str, config: dict[str, Any], trust_remote_code: bool) -> None:
    """A model whose type transformers does not know but whose config names its own code
    (``auto_map``) runs only with ``--trust-remote-code``."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    if trust_remote_code or not config.get("auto_map"):
        return
    if config.get("model_type") not in CONFIG_MAPPING_NAMES:
        raise ConvergentError(f"{location}: runs its own Python code (model type "
                              f"{config.get('model_type')!r} is not in transformers); pass "
                              "--trust-remote-code to allow it")


def checkpoint_bytes(location: str) -> int | None:
    """Size of a local folder's safetensors weights (from the index, else the files)."""
    folder = Path(location)
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        size = json.loads(index.read_text()).get("metadata", {}).get("total_size")
        if size:
            return int(size)
    files = list(folder.glob("*.safetensors"))
    return sum(f.stat().st_size for f in files) if files else None


def placement(device: str, model_dtype: str | None, size: int | None) -> dict[str, Any]:
    """``from_pretrained`` keywords for the device and weight dtype: ``device="auto"``, or
    a CUDA device the checkpoint does not fit on (90% of it), spreads the model with
    ``device_map="auto"``; weights are float32 on the CPU, the checkpoint's dtype elsewhere,
    unless ``model_dtype`` says otherwise."""
    import torch

    dtype: Any = model_dtype or ("float32" if device == "cpu" else "auto")
    out: dict[str, Any] = {"dtype": dtype if dtype == "auto" else getattr(torch, dtype)}
    if device == "auto":
        out["device_map"] = "auto"
    elif device.startswith("cuda") and size is not None and torch.cuda.is_available():
        index = torch.device(device).index or 0
        if size > 0.9 * torch.cuda.get_device_properties(index).total_memory:
            print(f"convergent: {size / 2**30:.1f} GiB of weights exceed {device}; spreading "
                  "the model with device_map='auto'", flush=True)
            out["device_map"] = "auto"
    return out


def load_pretrained(location: str, revision: str | None, trust_remote_code: bool,
                    device: str, model_dtype: str | None = None) -> tuple[Any, Any]:
    """(model in eval mode, fast tokenizer) from a folder or hub id; safetensors only."""
    from transformers import AutoConfig, AutoTokenizer

    common = {"revision": revision, "trust_remote_code": trust_remote_code}
    local = Path(location) / "config.json"
    if local.is_file():
        require_trust(location, json.loads(local.read_text()), trust_remote_code)
    try:
        config = AutoConfig.from_pretrained(location, **common)
        tokenizer = AutoTokenizer.from_pretrained(location, **common)
        place = placement(device, model_dtype, checkpoint_bytes(location))
        model = _model_class(config).from_pretrained(
            location, config=config, use_safetensors=True, **place, **common)
    except ConvergentError:
        raise
    except OSError as err:
        text = str(err).splitlines()[0] if str(err) else type(err).__name__
        if "safetensors" in text or "pytorch_model.bin" in text:
            raise ConvergentError(f"{location}: no safetensors weights (pickled .bin weights "
                                  "are not loaded)") from None
        raise ConvergentError(f"{location}: cannot load the model ({text})") from None
    except Exception as err:  # transformers/safetensors raise many types on bad folders
        text = str(err).splitlines()[0] if str(err) else type(err).__name__
        if "trust_remote_code" in str(err):
            raise ConvergentError(f"{location}: runs its own Python code; pass "
                                  "--trust-remote-code to allow it") from None
        raise ConvergentError(f"{location}: cannot load the model ({text})") from None
    if "device_map" in place:
        return model.eval(), tokenizer
    return model.to("cpu" if device == "auto" else device).eval(), tokenizer


def gguf_copy(ref: ModelRef, root: Path | None = None) -> Path:
    """A safetensors copy of a GGUF model under ``root/models``: made once (dequantizing
    with transformers + gguf, written to a temporary folder then renamed), reused after."""
    gguf_path = Path(ref.location) / str(ref.gguf_file)
    sha = file_sha256(gguf_path)
    target = (root or cache_root()) / "models" / f"{gguf_path.stem}-{sha[:16]}"
    if (target / "convergent.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    print(f"convergent: dequantizing {gguf_path.name} once (about half a minute); "
          f"the safetensors copy goes to {target}", flush=True)
    started = time.perf_counter()
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(ref.location, gguf_file=ref.gguf_file)
        model = AutoModelForCausalLM.from_pretrained(ref.location, gguf_file=ref.gguf_file)
    except Exception as err:
        raise ConvergentError(f"{gguf_path}: cannot read the GGUF file ({err})") from None
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        _save_plain(model, tokenizer, tmp)
        info = {"gguf": str(gguf_path), "gguf_sha256": sha,
                "weights_sha256": weights_sha256(tmp),
                "dequantize_seconds": round(time.perf_counter() - started, 1)}
        (tmp / "convergent.json").write_text(json.dumps(info, indent=2) + "\n")
        try:
            os.replace(tmp, target)
        except OSError:  # another process finished first: keep its copy
            if not (target / "convergent.json").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _save_plain(model: Any, tokenizer: Any, folder: Path) -> None:
    """config + tokenizer + one model.safetensors (tied rows stored once, as HF does)."""
    from safetensors.torch import save_file

    config = model.config.to_dict()
    config.pop("quantization_config", None)
    config["architectures"] = [type(model).__name__]
    type(model.config).from_dict(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    state = model.state_dict()
    out_emb, in_emb = model.get_output_embeddings(), model.get_input_embeddings()
    if out_emb is not None and out_emb.weight.data_ptr() == in_emb.weight.data_ptr():
        state = {k: v for k, v in state.items() if k != "lm_head.weight"}
    save_file({k: v.detach().contiguous() for k, v in state.items()},
              str(folder / "model.safetensors"), metadata={"format": "pt"})


def load_ref(ref: ModelRef, device: str, trust_remote_code: bool,
             root: Path | None = None, model_dtype: str | None = None
             ) -> tuple[Any, Any, dict[str, Any]]:
    """(model, tokenizer, identity) for any :class:`ModelRef`."""
    if device not in ("cpu", "auto"):
        import torch

        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ConvergentError(f"--device {device}: no CUDA device on this machine")
    identity: dict[str, Any] = {"revision": ref.revision}
    if ref.kind == "gguf":
        folder = gguf_copy(ref, root)
        info = json.loads((folder / "convergent.json").read_text())
        identity.update(model=str(Path(ref.location) / str(ref.gguf_file)),
                        gguf_sha256=info["gguf_sha256"], weights_sha256=info["weights_sha256"])
        location = str(folder)
    elif ref.kind == "hub":
        _check_online(ref)
        location = ref.location
        identity.update(model=ref.location)
    else:
        location = ref.location
        identity.update(model=str(Path(ref.location).resolve()),
                        weights_sha256=weights_sha256(ref.location))
    model, tokenizer = load_pretrained(location, ref.revision if ref.kind == "hub" else None,
                                       trust_remote_code, device, model_dtype)
    if ref.kind == "hub":
        identity["revision"] = getattr(model.config, "_commit_hash", None) or ref.revision
    return model, tokenizer, identity
