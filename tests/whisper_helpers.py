"""Shared helpers for the Whisper tests: seeded random models saved once in openai format, loaded by mmfm and openai-whisper."""
import os
import torch
from mmfm.whisper.model import ModelDimensions, Whisper, dims_for
from mmfm.whisper.checkpoints import save_openai_checkpoint

# same layout as the released models (80 Mel bins, 1500 audio positions, the multilingual vocabulary), narrow and shallow
TINY_DIMS = ModelDimensions(n_mels=80, n_audio_ctx=1500, n_audio_state=64, n_audio_head=2, n_audio_layer=2,
                            n_vocab=51865, n_text_ctx=448, n_text_state=64, n_text_head=2, n_text_layer=2)


def random_whisper(dims: ModelDimensions, seed: int = 0, std: float = 0.1, pos_std: float = 1.0) -> Whisper:
    "A Whisper whose EVERY parameter is seeded noise (LayerNorm gains around 1), so no tensor is left at an init default."
    torch.manual_seed(seed)
    model = Whisper(dims).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            is_gain = name.endswith("ln.weight") or "_ln." in name or name.endswith("ln_post.weight")
            scale = pos_std if name == "decoder.positional_embedding" else std  # strong positions: varied tokens, not one token repeated
            p.copy_(1 + std * torch.randn_like(p) if is_gain else scale * torch.randn_like(p))
    return model


def model_pair(dims, path, seed=0, std=0.1, pos_std=1.0):
    "(mmfm model, openai-whisper model) with the same random weights, through one openai-format checkpoint file."
    import whisper
    from mmfm.whisper.checkpoints import load_model
    save_openai_checkpoint(random_whisper(dims, seed, std, pos_std), path)
    return load_model(path, device="cpu"), whisper.load_model(path, device="cpu")


def random_mel(n: int, n_mels: int = 80, seed: int = 1) -> torch.Tensor:
    "n random 30 s inputs [n, n_mels, 3000]: a per-clip spectral profile drifting in time, plus noise (clips differ as wholes)."
    g = torch.Generator().manual_seed(seed)
    profile = torch.randn(n, n_mels, 1, generator=g)                                  # [n, n_mels, 1]
    drift = torch.randn(n, n_mels, 1, generator=g) * torch.linspace(-1, 1, 3000)      # [n, n_mels, 3000]
    return profile + drift + 0.5 * torch.randn(n, n_mels, 3000, generator=g)
