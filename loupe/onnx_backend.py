"""The image tower on ONNX Runtime: faster than torch on a CPU (bench/encoder.py), so the
encoder's ``backend: onnx`` runs its images here; texts stay on torch (a query is cheap).

The model's ``get_image_features`` is exported once per checkpoint and precision (torch's
TorchScript-based exporter, which needs no extra package) into a cache folder, and for ``int8``
quantised by ONNX Runtime's dynamic quantisation (weights int8, activations per batch).
Only fixed-size pixel inputs export this way; NaFlex's variable patch count stays on torch.
"""
import hashlib
import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch

ENV_CACHE = 'LOUPE_ONNX_CACHE'


def cache_root() -> Path:
    default = Path(os.environ.get('XDG_CACHE_HOME') or Path.home() / '.cache') / 'loupe' / 'onnx'
    return Path(os.environ.get(ENV_CACHE) or default)


def _key(checkpoint: str, model) -> str:
    """Same checkpoint folder or id, same configuration and same weights file times -> same
    export."""
    path = Path(checkpoint)
    stamps = sorted((f.name, f.stat().st_mtime_ns, f.stat().st_size)
                    for f in path.glob('*.safetensors')) if path.is_dir() else []
    text = json.dumps([str(path.resolve()) if path.is_dir() else checkpoint,
                       model.config.to_json_string(), stamps], default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


class _Tower(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, pixel_values):
        return self.model.get_image_features(pixel_values=pixel_values).pooler_output


class OnnxImageTower:
    """``forward(pixel_values) -> (N, D)`` unnormalised features, as ``get_image_features``."""

    def __init__(self, model, checkpoint: str, size: tuple, int8: bool):
        import onnxruntime

        folder = cache_root() / _key(checkpoint, model)
        folder.mkdir(parents=True, exist_ok=True)
        name = f'vision-{size[0]}x{size[1]}'
        path = folder / f'{name}.onnx'
        if not path.exists():
            example = torch.zeros(1, 3, *size)
            tmp = folder / f'.{name}-{os.getpid()}.onnx'
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter('ignore')
                torch.onnx.export(_Tower(model).eval(), (example,), str(tmp),
                                  input_names=['pixel_values'], output_names=['features'],
                                  dynamic_axes={'pixel_values': {0: 'n'}, 'features': {0: 'n'}},
                                  opset_version=17, dynamo=False)
            tmp.replace(path)  # atomic: a half-written file is never loaded
        if int8:
            quantized = folder / f'{name}-int8.onnx'
            if not quantized.exists():
                from onnxruntime.quantization import QuantType, quantize_dynamic

                tmp = folder / f'.{name}-int8-{os.getpid()}.onnx'
                quantize_dynamic(str(path), str(tmp), weight_type=QuantType.QInt8)
                tmp.replace(quantized)
            path = quantized
        self.path = path
        self.session = onnxruntime.InferenceSession(str(path),
                                                    providers=['CPUExecutionProvider'])

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        x = np.ascontiguousarray(pixel_values.float().cpu().numpy())
        return torch.from_numpy(self.session.run(None, {'pixel_values': x})[0])
