"""Images in and out of the model: `ImageTransform` for one image of any kind, `VEEGANImageProcessor` for a batch.

The model works in its own space: images `(batch, C, H, W)` in [-1, 1], vectors `(batch, data_dim)`. Users hand in PIL
images of any mode and size (converted and resized), numpy images `(N, H, W, C)` or tensors `(N, C, H, W)` with pixels
in [0, 1] (uint8 in 0..255), and vectors as arrays or tensors. Every other input is refused with an error that names
the argument, what was expected and what was given. Outputs leave the model's space for "pt", "np" or "pil", as
diffusers' `VaeImageProcessor` does for latent-diffusion models.
"""

from collections.abc import Sequence
from typing import Any

import numpy as np
import PIL.Image
import torch
from PIL import Image

OUTPUT_TYPES = ("pil", "np", "pt")
ImageInput = PIL.Image.Image | np.ndarray | torch.Tensor | Sequence[PIL.Image.Image] | Sequence[np.ndarray]


# ----------------------------------------------------------------------------------------------------------
# One image of any kind -> a model input (training data and the pipeline's PIL inputs)


def _float_to_uint8(array: np.ndarray) -> np.ndarray:
    # Float images are read as [-1, 1] when they hold negatives, [0, 1] when they fit in it, else as 0..255.
    if not np.isfinite(array).all():
        raise ValueError("The image holds NaN or infinite values; expected finite pixel values.")
    low, high = float(array.min()), float(array.max())
    if low >= -1.0 and high <= 1.0:
        array = (array + 1.0) / 2.0 if low < 0 else array
        array = array * 255.0
    elif low < 0 or high > 255.0:
        raise ValueError(f"Float image values span [{low:g}, {high:g}]; expected [0, 1], [-1, 1] or [0, 255].")
    return np.clip(np.rint(array), 0, 255).astype(np.uint8)


def _array_to_pil(array: np.ndarray) -> Image.Image:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (2, 3, 4)) or 0 in array.shape:
        raise ValueError(
            f"Expected a numpy image of shape (H, W) or (H, W, C) with C in 1..4, got shape {array.shape}."
        )
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    elif array.dtype == np.uint16:
        array = np.rint(array / 257.0).astype(np.uint8)  # 65535 -> 255
    elif np.issubdtype(array.dtype, np.floating):
        array = _float_to_uint8(array.astype(np.float64))
    elif array.dtype != np.uint8:
        raise ValueError(f"Expected a numpy image of dtype uint8, uint16, bool or float, got {array.dtype}.")
    return Image.fromarray(np.ascontiguousarray(array))  # L, LA, RGB or RGBA from the shape


def _to_l_or_rgb(image: Image.Image) -> Image.Image:
    # Brings every PIL mode to "L" or "RGB", so that only those two reach the resize.
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # PIL's own convert("L") clips 16-bit values at 255 instead of scaling them; "I" is read as 16-bit.
        array = np.asarray(image).astype(np.float64)
        return Image.fromarray(np.clip(np.rint(array / 257.0), 0, 255).astype(np.uint8))
    if mode == "F":
        return Image.fromarray(_float_to_uint8(np.asarray(image).astype(np.float64)))
    if mode == "1":
        return image.convert("L")
    if mode == "La":  # premultiplied alpha: PIL converts it to LA only
        image, mode = image.convert("LA"), "LA"
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    if has_alpha:
        # Transparent pixels become white: the usual look of uploaded drawings, logos and cut-out photos.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        composite = Image.alpha_composite(background, rgba)
        return composite.convert("L" if mode in ("LA", "La") else "RGB")
    if mode in ("L", "RGB"):
        return image
    return image.convert("RGB")  # P, CMYK, YCbCr, LAB, HSV, ...


class ImageTransform:
    r"""
    Turns one image of any kind into a model input: `(num_channels, resolution, resolution)` in [-1, 1].

    Steps: bring the image to grayscale or RGB (alpha composited onto **white**, 16-bit scaled to 8-bit),
    match the channel count (gray is replicated to RGB; RGB becomes gray by PIL's ITU-R 601-2 luminance),
    resize the shorter side to `resolution` (bicubic when enlarging, Lanczos when shrinking; both
    antialiased), crop a square, and optionally flip. Random choices use torch's global RNG, so the seeding
    of `accelerate` covers them. The object holds only plain attributes, so it pickles into dataloader
    workers.

    Args:
        resolution (`int`):
            The side of the square output.
        num_channels (`int`):
            1 for grayscale output, 3 for RGB.
        center_crop (`bool`, *optional*, defaults to `True`):
            Whether to crop the center; `False` crops at a random position.
        random_flip (`bool`, *optional*, defaults to `False`):
            Whether to flip left-right with probability 1/2.

    Example:
    ```py
    >>> from PIL import Image
    >>> from veegan_hf.image_processor import ImageTransform
    >>> transform = ImageTransform(resolution=64, num_channels=3)
    >>> transform(Image.new("RGBA", (178, 218))).shape
    torch.Size([3, 64, 64])

    ```
    """

    def __init__(self, resolution: int, num_channels: int, center_crop: bool = True, random_flip: bool = False):
        if not isinstance(resolution, int) or isinstance(resolution, bool) or resolution < 1:
            raise ValueError(f"resolution must be a positive int, got {resolution!r}.")
        if num_channels not in (1, 3):
            raise ValueError(f"num_channels must be 1 (grayscale) or 3 (RGB), got {num_channels!r}.")
        self.resolution = resolution
        self.num_channels = num_channels
        self.center_crop = center_crop
        self.random_flip = random_flip

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(resolution={self.resolution}, num_channels={self.num_channels}, "
            f"center_crop={self.center_crop}, random_flip={self.random_flip})"
        )

    def __call__(self, image: Image.Image | np.ndarray) -> torch.Tensor:
        if isinstance(image, np.ndarray):
            image = _array_to_pil(image)
        elif not isinstance(image, Image.Image):
            raise ValueError(
                f"Expected a PIL.Image.Image or a numpy array of shape (H, W) or (H, W, C), got {type(image).__name__}."
            )
        if image.width == 0 or image.height == 0:
            raise ValueError(f"Expected a non-empty image, got size {image.size}.")
        image = _to_l_or_rgb(image)
        image = image.convert("L" if self.num_channels == 1 else "RGB")

        # Resize so that the shorter side is exactly `resolution`, keeping the aspect ratio.
        width, height = image.size
        scale = self.resolution / min(width, height)
        size = (max(self.resolution, round(width * scale)), max(self.resolution, round(height * scale)))
        if size != image.size:
            resample = Image.Resampling.BICUBIC if scale > 1 else Image.Resampling.LANCZOS
            # reducing_gap first shrinks huge images by an integer factor (fast), then resamples exactly.
            image = image.resize(size, resample=resample, reducing_gap=3.0)

        width, height = image.size
        if self.center_crop:
            left, top = (width - self.resolution) // 2, (height - self.resolution) // 2
        else:
            left = int(torch.randint(width - self.resolution + 1, ()).item())
            top = int(torch.randint(height - self.resolution + 1, ()).item())
        image = image.crop((left, top, left + self.resolution, top + self.resolution))
        if self.random_flip and torch.rand(()).item() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)

        array = np.asarray(image, dtype=np.uint8)  # (H, W) or (H, W, 3)
        pixel_values = torch.from_numpy(array.copy()).float() / 127.5 - 1.0  # 0..255 -> [-1, 1]
        if pixel_values.ndim == 2:
            return pixel_values[None]  # (1, resolution, resolution)
        return pixel_values.permute(2, 0, 1).contiguous()  # (3, resolution, resolution)


class VEEGANImageProcessor:
    r"""
    Converts user samples into the model's space and generated samples back out.

    Parameters:
        is_image_model (`bool`): images (`"dcgan"` networks) or vectors (`"mlp"`).
        data_dim (`int`, *optional*): the vector size, for vector models.
        image_size (`int`, *optional*): the image side, for image models.
        num_channels (`int`, *optional*): 1 or 3, for image models.

    Example:

    ```py
    >>> import numpy as np
    >>> from veegan_hf.image_processor import VEEGANImageProcessor

    >>> processor = VEEGANImageProcessor(is_image_model=True, image_size=28, num_channels=1)
    >>> processor.preprocess(np.zeros((2, 28, 28, 1), dtype=np.uint8)).shape
    torch.Size([2, 1, 28, 28])
    ```
    """

    def __init__(
        self,
        is_image_model: bool,
        data_dim: int | None = None,
        image_size: int | None = None,
        num_channels: int | None = None,
    ):
        self.is_image_model, self.data_dim = is_image_model, data_dim
        self.image_size, self.num_channels = image_size, num_channels

    @property
    def expected(self) -> str:
        """What one input sample must be, in words."""
        if not self.is_image_model:
            return f"float vectors of shape (batch, {self.data_dim})"
        return f"{self.num_channels}x{self.image_size}x{self.image_size} images (channels x height x width)"

    def preprocess(self, samples: ImageInput, name: str = "images") -> torch.Tensor:
        """User input -> a float32 CPU tensor in the model's space; `name` is the argument named in errors."""
        if samples is None or isinstance(samples, (str, bytes, dict, set)) or hasattr(samples, "__fspath__"):
            raise TypeError(
                f"{name} must be PIL images, a numpy array or a tensor holding {self.expected}, got "
                f"{type(samples).__name__}. Open image files first, e.g. PIL.Image.open(path)."
            )
        if isinstance(samples, (list, tuple)):
            if not samples:
                raise ValueError(f"{name} is empty: pass at least one sample.")
            kinds = {type(s) for s in samples}
            pil = all(isinstance(s, PIL.Image.Image) for s in samples)
            if any(isinstance(s, (str, bytes)) or hasattr(s, "__fspath__") for s in samples):
                raise TypeError(
                    f"{name} holds file paths; open the files first: [PIL.Image.open(path) for path in paths] (any "
                    f"size or mode is converted to {self.expected})."
                )
            if not pil and not all(isinstance(s, (np.ndarray, torch.Tensor)) for s in samples):
                raise TypeError(
                    f"{name} mixes or holds unsupported types {sorted(k.__name__ for k in kinds)}; pass PIL images, "
                    f"numpy arrays or tensors holding {self.expected}."
                )
        x = self._images(samples, name) if self.is_image_model else self._vectors(samples, name)
        if x.shape[0] == 0:
            raise ValueError(f"{name} is empty: pass at least one sample.")
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"{name} holds NaN or infinite values; pass finite samples.")
        return x

    def _vectors(self, samples: Any, name: str) -> torch.Tensor:
        if isinstance(samples, (list, tuple)):
            samples = np.stack([np.asarray(s) for s in samples]) if len({np.shape(s) for s in samples}) == 1 else None
        if not isinstance(samples, (np.ndarray, torch.Tensor)):
            raise ValueError(f"{name} must be {self.expected} of equal shapes.")
        x = torch.as_tensor(samples) if isinstance(samples, torch.Tensor) else _numeric_tensor(samples, name)
        x = x.unsqueeze(0) if x.ndim == 1 else x
        if x.ndim != 2 or x.shape[1] != self.data_dim or not (x.is_floating_point() or _is_integer(x)):
            raise ValueError(f"{name} must be {self.expected}, got {x.dtype} of shape {tuple(x.shape)}.")
        return x.detach().float().cpu()

    def _images(self, samples: Any, name: str) -> torch.Tensor:
        if isinstance(samples, PIL.Image.Image) or (
            isinstance(samples, (list, tuple)) and isinstance(samples[0], PIL.Image.Image)
        ):
            # PIL images are converted (mode, size) rather than rejected: what a user uploading a file wants
            transform = ImageTransform(resolution=self.image_size, num_channels=self.num_channels, center_crop=True)
            images = [samples] if isinstance(samples, PIL.Image.Image) else list(samples)
            converted = []
            for index, image in enumerate(images):
                try:
                    converted.append(transform(image))
                except (ValueError, OSError) as err:
                    raise ValueError(f"{name}[{index}] (PIL mode {image.mode!r}, size {image.size}): {err}") from None
            return torch.stack(converted)
        if isinstance(samples, (list, tuple)):
            shapes = {tuple(np.shape(s)) for s in samples}
            if len(shapes) > 1:
                raise ValueError(
                    f"{name} holds arrays of different shapes {sorted(shapes)}; pass equal shapes, or PIL images "
                    "to have them resized."
                )
            samples = np.stack([s.detach().cpu().numpy() if torch.is_tensor(s) else np.asarray(s) for s in samples])
        if isinstance(samples, np.ndarray):
            arr = _numeric_tensor(samples, name).numpy()
            # numpy images are channels-last, as the "np" output: (H, W), (H, W, C) or (N, H, W, C)
            single_gray = arr.ndim == 3 and self.num_channels == 1 and arr.shape[-1] != 1
            arr = arr[..., None] if arr.ndim == 2 or single_gray else arr
            arr = arr[None] if arr.ndim == 3 else arr
            if arr.ndim != 4:
                raise ValueError(f"{name} as numpy must be (N, H, W, C) {self.expected}, got shape {samples.shape}.")
            x = torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2)
        elif torch.is_tensor(samples):
            # tensors are channels-first, as the "pt" output: (C, H, W) or (N, C, H, W)
            x = samples.detach().cpu()
            x = x[None] if x.ndim == 3 else x
            if x.ndim != 4:
                raise ValueError(f"{name} as a tensor must be (N, C, H, W) {self.expected}, got {tuple(x.shape)}.")
        else:
            raise TypeError(f"{name} must be PIL images, numpy arrays or tensors, got {type(samples).__name__}.")
        if tuple(x.shape[1:]) != (self.num_channels, self.image_size, self.image_size):
            if isinstance(samples, np.ndarray):  # say it in the numpy layout the user passed
                size, channels = self.image_size, self.num_channels
                raise ValueError(
                    f"{name} as numpy must be (N, {size}, {size}, {channels}) images (height x width x channels, "
                    f"channels last), got shape {tuple(samples.shape)}. Pass PIL images to have them converted and "
                    "resized."
                )
            raise ValueError(
                f"{name} must be {self.expected}, got {'x'.join(map(str, x.shape[1:]))}. Pass PIL images to have "
                "them converted and resized."
            )
        if x.shape[0] == 0:
            raise ValueError(f"{name} is empty: pass at least one sample.")
        if x.dtype == torch.uint8:
            x = x.float() / 255.0
        elif not x.is_floating_point():
            raise ValueError(f"{name} must hold uint8 or float pixels, got {x.dtype}.")
        x = x.float()
        lo, hi = (v.item() for v in torch.aminmax(x))  # one pass over the pixels
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise ValueError(f"{name} holds NaN or infinite pixels; pass finite pixels in [0, 1].")
        if lo < -1e-3 or hi > 1 + 1e-3:
            raise ValueError(
                f"{name} must hold float pixels in [0, 1], got values in [{lo:.3g}, {hi:.3g}]. Map [-1, 1] data "
                "with (x + 1) / 2, or [0, 255] data with x / 255."
            )
        return x.clamp(0, 1) * 2 - 1  # [0, 1] -> the model's [-1, 1]

    def postprocess(self, samples: torch.Tensor, output_type: str) -> Any:
        """Model space -> the requested type; images leave [-1, 1] for [0, 1]."""
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type={output_type!r} is not supported; use one of {OUTPUT_TYPES}.")
        if not self.is_image_model:
            if output_type == "pil":
                raise ValueError("output_type='pil' needs an image model; this one makes vectors: use 'pt' or 'np'.")
            return samples.float().cpu().numpy() if output_type == "np" else samples
        images = ((samples.float() + 1) / 2).clamp(0, 1)  # (batch, C, H, W)
        if output_type == "pt":
            return images
        arr = images.permute(0, 2, 3, 1).cpu().numpy()  # (batch, H, W, C)
        if output_type == "np":
            return arr
        arr = (arr * 255).round().astype(np.uint8)
        return [PIL.Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a) for a in arr]


def _is_integer(x: torch.Tensor) -> bool:
    return not x.is_floating_point() and not x.is_complex() and x.dtype != torch.bool


def _numeric_tensor(array: np.ndarray, name: str) -> torch.Tensor:
    """A numpy array of numbers as a tensor; object, string and complex arrays are refused by name."""
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold numbers, got a numpy array of dtype {array.dtype}.")
    if array.dtype.kind == "b":
        array = array.astype(np.uint8) * 255
    elif array.dtype.kind in "iu" and array.dtype != np.uint8:
        array = array.astype(np.float32)
    return torch.from_numpy(np.ascontiguousarray(array))


POLARITY_MARGIN = 0.3  # inverting an image must bring its brightness this much closer to the model's to count


def reversed_polarity(pixel_values: torch.Tensor, model_brightness: float) -> torch.Tensor:
    """`(N,)` True where an image in [-1, 1] is clearly the negative of what the model makes: dark strokes on a light
    ground for a model of light strokes on a dark one. Its mean brightness in [0, 1] is then far from the model's,
    and its negative's is close."""
    brightness = (pixel_values.flatten(1).float().mean(dim=1) + 1) / 2  # (N,) in [0, 1]
    return (1 - brightness - model_brightness).abs() + POLARITY_MARGIN < (brightness - model_brightness).abs()


def apply_invert_colors(
    pixel_values: torch.Tensor, invert_colors: bool | str, model_brightness: float, name: str = "images"
) -> torch.Tensor:
    """`invert_colors`: False leaves the images (and warns about any that look reversed), True inverts all of them,
    "auto" inverts the ones that look reversed, as the Space does for uploads."""
    if invert_colors not in (True, False, "auto") or (isinstance(invert_colors, int) and invert_colors not in (0, 1)):
        raise ValueError(f"invert_colors must be True, False or 'auto', got {invert_colors!r}.")
    if invert_colors is True:
        return -pixel_values
    flipped = reversed_polarity(pixel_values, model_brightness)  # (N,)
    if invert_colors == "auto":
        return torch.where(flipped.view(-1, *[1] * (pixel_values.ndim - 1)), -pixel_values, pixel_values)
    if bool(flipped.any()):
        import warnings

        warnings.warn(
            f"{int(flipped.sum())} of {len(flipped)} {name} look like the negative of what this model makes (mean "
            f"brightness far from its samples' {model_brightness:.2f}, while their negative's is close), e.g. dark "
            "strokes on white for a model of light strokes on black. Pass invert_colors='auto' (or True) to invert "
            "them first.",
            UserWarning,
            stacklevel=_user_stacklevel(),
        )
    return pixel_values


def _user_stacklevel() -> int:
    """The `stacklevel` that points a warning at the user's line: the first caller outside this package and torch
    (whose `no_grad` wrappers add frames)."""
    import inspect

    for level, info in enumerate(inspect.stack()[1:], start=1):  # level 1: the function that calls warn
        module = info.frame.f_globals.get("__name__", "")
        if not module.startswith(("veegan_hf", "torch")):
            return level
    return 1
