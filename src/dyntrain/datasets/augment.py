"""Image augmentations: random, photo-like changes that keep what the image shows.

Each operation has its own strength in :class:`AugmentConfig` (0 = off). For every image
the magnitude of each enabled operation is drawn uniformly in ``[-strength, +strength]``
(signed operations: shifts, angles, brightness...) or ``[0, strength]`` (unsigned ones:
noise, blur, glare, moiré); flips use their strength as a probability. Every operation
draws from its own generator seeded by ``(seed, operation)``, so turning one operation on
or off never changes what the others do for the same seed.

Where the pixels come from (no dependency beyond Pillow and numpy):

* Pillow: the geometric transform (one affine resample: translation, rotation, shear,
  scale), brightness and contrast (``ImageEnhance``), colour temperature (a colour-matrix
  ``Image.convert``), blur (``ImageFilter.GaussianBlur``).
* numpy, written here because no permissive library we can take has them in this form:
  reflective border padding for the affine transform, Gaussian noise, sensor noise
  (Poisson-Gaussian model), glare and moiré.

>>> import numpy as np
>>> img = np.full((64, 64, 3), 128, np.uint8)
>>> out = augment(img, PRESETS["medium"], seed=1)
>>> out.shape, out.dtype
((64, 64, 3), dtype('uint8'))
>>> augmentation_id(PRESETS["none"])
'none'
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import math
import statistics
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

from ..kernel.errors import Invalid

__all__ = [
    "AUGMENT_VERSION",
    "AugmentConfig",
    "PRESETS",
    "get_preset",
    "augment",
    "draw_params",
    "apply_params",
    "augmentation_id",
    "preview_grid",
]

# Part of every augmentation_id: bump it whenever the same config and seed give different
# pixels (an algorithm change), so cached features of augmented copies are not reused.
AUGMENT_VERSION = 1

# Allowed range of each strength (lower bound 0) and what it means.
_LIMITS: dict[str, float] = {
    "translate": 0.5,  # max shift, fraction of width/height
    "rotate": 180.0,  # max angle, degrees
    "shear": 45.0,  # max horizontal shear angle, degrees
    "scale": 0.9,  # max relative zoom in or out (0.1 = 90%..110%)
    "hflip": 1.0,  # probability of a left-right mirror
    "vflip": 1.0,  # probability of an upside-down mirror
    "brightness": 1.0,  # max relative change of brightness
    "contrast": 1.0,  # max relative change of contrast
    "temperature": 0.5,  # max red/blue gain shift (+ warmer, - cooler)
    "gaussian_noise": 0.5,  # max noise std, fraction of the 0..255 range
    "sensor_noise": 0.5,  # max shot-noise std at full white, fraction of the range
    "blur": 10.0,  # max Gaussian sigma in pixels, for a 224-pixel image
    "glare": 1.0,  # max peak opacity of the highlight
    "moire": 0.5,  # max relative amplitude of the interference bands
}

# Stable per-operation stream ids: never renumber (it would change every seed's output).
_OP_STREAM = {name: i for i, name in enumerate(_LIMITS)}


@dataclass(frozen=True)
class AugmentConfig:
    """Strength of each augmentation; 0 turns it off. See ``_LIMITS`` for ranges.

    Flips are off by default: a mirrored label, text or asymmetric product is a different
    thing, so turn them on only for classes that look the same mirrored.

    >>> AugmentConfig(rotate=10).to_dict()["rotate"]
    10.0
    >>> AugmentConfig.from_dict({"rotate": 10}) == AugmentConfig(rotate=10)
    True
    """

    translate: float = 0.0
    rotate: float = 0.0
    shear: float = 0.0
    scale: float = 0.0
    hflip: float = 0.0
    vflip: float = 0.0
    brightness: float = 0.0
    contrast: float = 0.0
    temperature: float = 0.0
    gaussian_noise: float = 0.0
    sensor_noise: float = 0.0
    blur: float = 0.0
    glare: float = 0.0
    moire: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            # bool is an int subclass: "rotate": true is a mistake, not 1 degree.
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise Invalid(f"augmentation '{f.name}' must be a number, got {value!r}")
            value = float(value)
            limit = _LIMITS[f.name]
            if not (0.0 <= value <= limit):  # also rejects NaN
                raise Invalid(f"augmentation '{f.name}' must be between 0 and {limit:g}, got {value!r}")
            object.__setattr__(self, f.name, value)  # canonical float: 5 and 5.0 hash alike

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AugmentConfig:
        """Build from JSON; missing keys are off, unknown keys raise :class:`Invalid`."""
        if not isinstance(data, Mapping):
            raise Invalid(f"augmentation config must be an object, got {type(data).__name__}")
        unknown = sorted(set(data) - set(_LIMITS))
        if unknown:
            raise Invalid(
                f"unknown augmentation setting(s): {', '.join(map(str, unknown))}; "
                f"known: {', '.join(_LIMITS)}"
            )
        return cls(**dict(data))

    @property
    def is_identity(self) -> bool:
        return not any(self.to_dict().values())


PRESETS: dict[str, AugmentConfig] = {
    "none": AugmentConfig(),
    "light": AugmentConfig(
        translate=0.05, rotate=5, scale=0.05, brightness=0.1, contrast=0.1, temperature=0.03, blur=0.5
    ),
    "medium": AugmentConfig(
        translate=0.1, rotate=10, shear=5, scale=0.1, brightness=0.2, contrast=0.2, temperature=0.06,
        gaussian_noise=0.01, sensor_noise=0.03, blur=1.0, glare=0.3,
    ),
    "strong": AugmentConfig(
        translate=0.15, rotate=20, shear=10, scale=0.2, brightness=0.3, contrast=0.3, temperature=0.1,
        gaussian_noise=0.02, sensor_noise=0.06, blur=1.5, glare=0.5, moire=0.15,
    ),
}


def get_preset(name: str) -> AugmentConfig:
    """The preset called ``name`` (none, light, medium, strong), or :class:`Invalid`."""
    try:
        return PRESETS[name]
    except KeyError:
        raise Invalid(f"unknown augmentation preset {name!r}; choose one of {', '.join(PRESETS)}") from None


def augmentation_id(config: AugmentConfig) -> str:
    """A short id that changes whenever the augmented pixels would: used in feature-cache keys.

    The identity config is ``"none"``; otherwise ``aug<version>-<12 hex>`` over the
    canonical JSON of the config. The cache key of one augmented copy must add its seed.

    >>> augmentation_id(AugmentConfig(rotate=10)) == augmentation_id(AugmentConfig.from_dict({"rotate": 10.0}))
    True
    """
    if config.is_identity:
        return "none"
    canonical = json.dumps(config.to_dict(), sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(f"v{AUGMENT_VERSION}:{canonical}".encode()).hexdigest()
    return f"aug{AUGMENT_VERSION}-{digest[:12]}"


# --------------------------------------------------------------------------- parameters


def _rng(seed: int, op: str) -> np.random.Generator:
    return np.random.default_rng([seed, _OP_STREAM[op]])


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise Invalid(f"augmentation seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def draw_params(config: AugmentConfig, seed: int, height: int, width: int) -> dict[str, dict[str, Any]]:
    """The concrete random choices for one augmented copy: ``{op: {parameter: value}}``.

    Only enabled operations appear. JSON-able, so a preview or a debug log can show them.
    :func:`augment` is ``apply_params(image, draw_params(config, seed, h, w))``.

    >>> -10 <= draw_params(AugmentConfig(rotate=10), 3, 224, 224)["rotate"]["degrees"] <= 10
    True
    """
    seed = _check_seed(seed)
    c = config
    side = min(height, width)
    p: dict[str, dict[str, Any]] = {}

    def u(op: str, signed: bool = True) -> float:
        s = getattr(c, op)
        return float(_rng(seed, op).uniform(-s if signed else 0.0, s))

    if c.translate:
        g = _rng(seed, "translate")
        p["translate"] = {
            "dx": float(g.uniform(-c.translate, c.translate) * width),
            "dy": float(g.uniform(-c.translate, c.translate) * height),
        }
    if c.rotate:
        p["rotate"] = {"degrees": u("rotate")}
    if c.shear:
        p["shear"] = {"degrees": u("shear")}
    if c.scale:
        p["scale"] = {"factor": 1.0 + u("scale")}
    for flip in ("hflip", "vflip"):
        if getattr(c, flip):
            p[flip] = {"flip": bool(_rng(seed, flip).random() < getattr(c, flip))}
    if c.brightness:
        p["brightness"] = {"factor": 1.0 + u("brightness")}
    if c.contrast:
        p["contrast"] = {"factor": 1.0 + u("contrast")}
    if c.temperature:
        p["temperature"] = {"shift": u("temperature")}
    if c.glare:
        g = _rng(seed, "glare")
        p["glare"] = {
            "opacity": float(g.uniform(0.0, c.glare)),
            "cx": float(g.uniform(0.1, 0.9) * width),
            "cy": float(g.uniform(0.1, 0.9) * height),
            "sigma_major": float(g.uniform(0.08, 0.3) * side),
            "aspect": float(g.uniform(1.0, 4.0)),  # reflections on glossy packs are often streaks
            "angle": float(g.uniform(0.0, math.pi)),
        }
    if c.blur:
        p["blur"] = {"sigma": u("blur", signed=False) * side / 224.0}
    if c.moire:
        g = _rng(seed, "moire")
        p["moire"] = {
            "amplitude": float(g.uniform(0.0, c.moire)),
            "period": float(g.uniform(6.0, 24.0) * side / 224.0),  # beat period, pixels
            "angle": float(g.uniform(0.0, math.pi)),
            "curvature": float(g.uniform(-1.0, 1.0)),  # lens distortion bends the bands
            "phase": float(g.uniform(0.0, 2 * math.pi)),
            "channel_shift": float(g.uniform(0.3, 1.2)),  # sub-pixel colour fringes, radians
        }
    if c.gaussian_noise:
        g = _rng(seed, "gaussian_noise")
        p["gaussian_noise"] = {"sigma": float(g.uniform(0.0, c.gaussian_noise) * 255.0),
                               "seed": int(g.integers(2**63))}
    if c.sensor_noise:
        g = _rng(seed, "sensor_noise")
        p["sensor_noise"] = {
            "shot": float(g.uniform(0.0, c.sensor_noise)),
            # Read noise per channel: green is sampled twice in a Bayer mosaic, blue is weakest.
            "read": [float(x) for x in np.array([1.0, 0.8, 1.3]) * g.uniform(0.7, 1.3, 3)],
            "seed": int(g.integers(2**63)),
        }
    return p


# ---------------------------------------------------------------------------- operations


def _affine(img: Image.Image, p: Mapping[str, Mapping[str, Any]]) -> Image.Image:
    """One bilinear resample for translation, rotation, shear, scale and flips.

    Borders are filled by reflection (padding just enough), not black: black wedges would
    be a pattern the model could learn that real photos never have.
    """
    w, h = img.size
    theta = math.radians(p.get("rotate", {}).get("degrees", 0.0))
    shear = math.radians(p.get("shear", {}).get("degrees", 0.0))
    s = p.get("scale", {}).get("factor", 1.0)
    fx = -1.0 if p.get("hflip", {}).get("flip") else 1.0
    fy = -1.0 if p.get("vflip", {}).get("flip") else 1.0
    dx = p.get("translate", {}).get("dx", 0.0)
    dy = p.get("translate", {}).get("dy", 0.0)
    # forward: out = c + t + R @ Sh @ (s * F) @ (in - c)
    cos, sin = math.cos(theta), math.sin(theta)
    rot = np.array([[cos, -sin], [sin, cos]])
    sh = np.array([[1.0, math.tan(shear)], [0.0, 1.0]])
    fwd = rot @ sh @ np.diag([s * fx, s * fy])
    if np.allclose(fwd, np.diag([fx, fy])) and abs(dx) < 1e-9 and abs(dy) < 1e-9:
        arr = np.asarray(img)[:: int(fy), :: int(fx)]  # flips only: exact, no resample
        return Image.fromarray(np.ascontiguousarray(arr))
    inv = np.linalg.inv(fwd)
    c = np.array([w / 2.0, h / 2.0])
    offset = c - inv @ (c + np.array([dx, dy]))  # in = inv @ out + offset
    corners = np.array([[0, 0], [w, 0], [0, h], [w, h]], float)
    src = corners @ inv.T + offset
    pad_x = int(math.ceil(max(0.0, -src[:, 0].min(), src[:, 0].max() - w))) + 1
    pad_y = int(math.ceil(max(0.0, -src[:, 1].min(), src[:, 1].max() - h))) + 1
    arr = np.pad(np.asarray(img), ((pad_y, pad_y), (pad_x, pad_x), (0, 0)), mode="symmetric")
    data = (inv[0, 0], inv[0, 1], offset[0] + pad_x, inv[1, 0], inv[1, 1], offset[1] + pad_y)
    return Image.fromarray(arr).transform((w, h), Image.Transform.AFFINE, data, resample=Image.Resampling.BILINEAR)


def _glare(x: np.ndarray, q: Mapping[str, float]) -> np.ndarray:
    """Screen-blend a soft, warm-white elliptical highlight: bright spot, untouched elsewhere."""
    h, w = x.shape[:2]
    yy, xx = np.ogrid[0:h, 0:w]
    xx = xx.astype(np.float32) - np.float32(q["cx"])
    yy = yy.astype(np.float32) - np.float32(q["cy"])
    ca, sa = math.cos(q["angle"]), math.sin(q["angle"])
    u = (xx * ca + yy * sa) / q["sigma_major"]
    v = (-xx * sa + yy * ca) / (q["sigma_major"] / q["aspect"])
    # Clip the exponent: exp() of very negative numbers gives denormals, which are ~10x
    # slower to multiply; e^-20 is invisible anyway.
    mask = np.exp(-0.5 * np.minimum(u * u + v * v, np.float32(40.0))) * np.float32(q["opacity"])
    out = np.empty_like(x)
    # Per channel: broadcasting an (h, w, 1) plane against 3 channels is ~5x slower in numpy.
    for c, light in enumerate((255.0, 250.0, 238.0)):
        out[..., c] = x[..., c] + (np.float32(light) - x[..., c]) * mask
    return out


def _moire(x: np.ndarray, q: Mapping[str, float]) -> np.ndarray:
    """Multiply by moiré bands: the visible difference-frequency term of two superimposed
    fine gratings (a screen's pixel grid and the camera's sensor grid), slightly curved,
    with a phase offset per channel for the typical colour fringes."""
    h, w = x.shape[:2]
    yy, xx = np.ogrid[0:h, 0:w]
    xx = (xx.astype(np.float32) - w / 2.0) / max(h, w)
    yy = (yy.astype(np.float32) - h / 2.0) / max(h, w)
    ca, sa = math.cos(q["angle"]), math.sin(q["angle"])
    along = xx * ca + yy * sa
    across = -xx * sa + yy * ca
    phase = (2 * math.pi * max(h, w) / q["period"]) * (along + 0.3 * q["curvature"] * across * across) + q["phase"]
    # cos(phase + shift_c) per channel from one cos and one sin (3x fewer transcendentals).
    shifts = np.array([-1.0, 0.0, 1.0]) * q["channel_shift"]
    cos_p, sin_p = np.cos(phase), np.sin(phase)
    a = q["amplitude"]
    out = np.empty_like(x)
    for c, shift in enumerate(shifts):
        band = cos_p * np.float32(a * math.cos(shift)) - sin_p * np.float32(a * math.sin(shift))
        out[..., c] = x[..., c] * (np.float32(1.0) + band)
    return out


@functools.cache
def _normal_table() -> np.ndarray:
    """65,536 standard-normal quantiles: indexing it with random uint16s draws Gaussian
    noise 4x faster than ``Generator.standard_normal`` (tails cut at 4.3 sigma)."""
    dist = statistics.NormalDist()
    return np.array([dist.inv_cdf((i + 0.5) / 65536) for i in range(65536)], np.float32)


def _standard_normal(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    idx = np.random.default_rng(seed).integers(0, 65536, shape, dtype=np.uint16)
    return np.take(_normal_table(), idx)


def _sensor_noise(x: np.ndarray, q: Mapping[str, Any]) -> np.ndarray:
    """Poisson-Gaussian sensor noise in linear light: shot noise whose variance grows with
    the signal, plus per-channel read noise; the gamma curve then amplifies it in shadows.

    Shot noise uses the Gaussian approximation of the Poisson law (same mean and variance):
    a Poisson draw costs ~10x more and the difference is invisible at photon counts > 10.
    Gamma 2 (square / square root) stands in for sRGB's ~2.2 at a fraction of the cost.
    """
    lin = np.clip(x, 0.0, 255.0) * np.float32(1 / 255.0)
    lin *= lin
    noise = _standard_normal(q["seed"], x.shape)
    shot = np.float32(q["shot"])
    for c in range(3):
        # Read noise ~15% of the shot noise at white: a few electrons against a few hundred
        # at full well, as in a small high-ISO sensor.
        read = np.float32(q["read"][c] * q["shot"] * 0.15)
        std = np.sqrt(lin[..., c] * (shot * shot) + read * read)
        lin[..., c] += std * noise[..., c]
    return np.sqrt(np.clip(lin, 0.0, 1.0)) * np.float32(255.0)


def apply_params(image: np.ndarray, params: Mapping[str, Mapping[str, Any]]) -> np.ndarray:
    """Apply drawn parameters (see :func:`draw_params`) to a uint8 HWC RGB image.

    Order follows how a photo is made: camera pose (geometry), scene light (brightness,
    contrast, colour temperature, glare), lens (blur), sensor (moiré, noise).
    """
    _check_image(image)
    if not params:
        return image.copy()
    img = Image.fromarray(image)
    if params.keys() & {"translate", "rotate", "shear", "scale", "hflip", "vflip"}:
        img = _affine(img, params)
    if "brightness" in params:
        img = ImageEnhance.Brightness(img).enhance(params["brightness"]["factor"])
    if "contrast" in params:
        img = ImageEnhance.Contrast(img).enhance(params["contrast"]["factor"])
    if "temperature" in params:
        t = params["temperature"]["shift"]
        img = img.convert("RGB", (1.0 + t, 0, 0, 0, 0, 1.0, 0, 0, 0, 0, 1.0 - t, 0))
    if "glare" in params:
        x = _glare(np.asarray(img, np.float32), params["glare"])
        img = Image.fromarray(np.clip(x + 0.5, 0, 255).astype(np.uint8))
    if "blur" in params and params["blur"]["sigma"] >= 0.05:
        img = img.filter(ImageFilter.GaussianBlur(params["blur"]["sigma"]))
    if params.keys() & {"moire", "gaussian_noise", "sensor_noise"}:
        x = np.asarray(img, np.float32)
        if "moire" in params:
            x = _moire(x, params["moire"])
        if "sensor_noise" in params:
            x = _sensor_noise(x, params["sensor_noise"])
        if "gaussian_noise" in params:
            q = params["gaussian_noise"]
            x = x + _standard_normal(q["seed"], x.shape) * np.float32(q["sigma"])
        return np.clip(x + 0.5, 0, 255).astype(np.uint8)
    return np.asarray(img, dtype=np.uint8).copy()


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        desc = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise Invalid(f"expected a uint8 RGB image of shape (height, width, 3), got {desc}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise Invalid("image has no pixels")


def augment(image: np.ndarray, config: AugmentConfig, seed: int) -> np.ndarray:
    """One augmented copy of ``image`` (uint8 HWC RGB): same shape and dtype, and the same
    pixels for the same ``(config, seed)``.

    >>> img = np.zeros((32, 48, 3), np.uint8)
    >>> bool((augment(img, PRESETS["strong"], 7) == augment(img, PRESETS["strong"], 7)).all())
    True
    """
    _check_image(image)
    return apply_params(image, draw_params(config, seed, image.shape[0], image.shape[1]))


# ------------------------------------------------------------------------------ preview


def preview_grid(image: np.ndarray, config: AugmentConfig, n: int = 8, seed: int = 0, *, cell: int = 224) -> bytes:
    """A PNG showing the original and ``n`` augmented variants (seeds ``seed+1 .. seed+n``),
    each labelled, so a user can see what a setting does before training with it.

    Large images are shrunk to ``cell`` pixels first (the model sees 224 px anyway).
    """
    _check_image(image)
    if not 0 <= n <= 64:
        raise Invalid(f"preview shows 0 to 64 variants, got {n}")
    _check_seed(seed)
    small = Image.fromarray(image)
    small.thumbnail((cell, cell), Image.Resampling.LANCZOS)
    base = np.asarray(small)
    tiles = [("original", base)] + [
        (f"#{k} seed {seed + k}", augment(base, config, seed + k)) for k in range(1, n + 1)
    ]
    cols = min(len(tiles), max(1, math.ceil(math.sqrt(len(tiles)))))
    rows = math.ceil(len(tiles) / cols)
    label_h, gap = 16, 4
    th, tw = base.shape[:2]
    sheet = Image.new("RGB", (cols * (tw + gap) + gap, rows * (th + label_h + gap) + gap), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for i, (label, arr) in enumerate(tiles):
        x = gap + (i % cols) * (tw + gap)
        y = gap + (i // cols) * (th + label_h + gap)
        sheet.paste(Image.fromarray(arr), (x, y))
        draw.text((x + 2, y + th + 2), label, fill=(0, 0, 0))
    out = io.BytesIO()
    sheet.save(out, "PNG", compress_level=1)  # a transient preview: speed over size
    return out.getvalue()
