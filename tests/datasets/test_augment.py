"""Augmentations on real photos: each operation changes the image in the intended way."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from dyntrain.datasets.augment import (
    PRESETS,
    AugmentConfig,
    apply_params,
    augment,
    augmentation_id,
    draw_params,
    get_preset,
    preview_grid,
)
from dyntrain.kernel.errors import Invalid


def f32(a: np.ndarray) -> np.ndarray:
    return a.astype(np.float64)


def high_freq_energy(img: np.ndarray) -> float:
    """Mean squared Laplacian of the grey image: what blur removes."""
    g = f32(img).mean(axis=2)
    lap = 4 * g[1:-1, 1:-1] - g[:-2, 1:-1] - g[2:, 1:-1] - g[1:-1, :-2] - g[1:-1, 2:]
    return float((lap**2).mean())


# ------------------------------------------------------------------------- configuration


def test_defaults_are_off_and_flips_are_off_in_every_preset():
    assert AugmentConfig().is_identity
    for name, cfg in PRESETS.items():
        assert cfg.hflip == 0 and cfg.vflip == 0, name
    assert PRESETS["none"].is_identity
    assert set(PRESETS) == {"none", "light", "medium", "strong"}


def test_config_json_round_trip_and_validation():
    cfg = PRESETS["strong"]
    assert AugmentConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert AugmentConfig.from_dict({"rotate": 10}) == AugmentConfig(rotate=10.0)
    with pytest.raises(Invalid, match="unknown augmentation setting"):
        AugmentConfig.from_dict({"rotate": 10, "colour": 1})
    with pytest.raises(Invalid):
        AugmentConfig(rotate=-1)
    with pytest.raises(Invalid):
        AugmentConfig(hflip=1.5)
    with pytest.raises(Invalid):
        AugmentConfig(blur=float("nan"))
    with pytest.raises(Invalid):
        AugmentConfig.from_dict({"rotate": True})
    with pytest.raises(Invalid):
        AugmentConfig.from_dict({"rotate": "10"})
    with pytest.raises(Invalid):
        AugmentConfig.from_dict(["rotate"])
    assert get_preset("light") is PRESETS["light"]
    with pytest.raises(Invalid):
        get_preset("extreme")


def test_augmentation_id_is_stable_and_canonical():
    assert augmentation_id(PRESETS["none"]) == "none"
    # Pinned: changing this value invalidates every cached feature of augmented copies.
    assert augmentation_id(AugmentConfig(rotate=10, blur=1)) == "aug1-70c3079424af"
    assert augmentation_id(AugmentConfig.from_dict({"blur": 1.0, "rotate": 10})) == "aug1-70c3079424af"
    ids = {augmentation_id(c) for c in PRESETS.values()}
    assert len(ids) == len(PRESETS)


# ---------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("preset", ["light", "medium", "strong"])
def test_same_seed_same_pixels_different_seed_different_pixels(photo224, preset):
    cfg = PRESETS[preset]
    a = augment(photo224, cfg, seed=3)
    assert a.shape == photo224.shape and a.dtype == np.uint8
    assert np.array_equal(a, augment(photo224, cfg, seed=3))
    assert not np.array_equal(a, augment(photo224, cfg, seed=4))
    assert not np.array_equal(a, photo224)


def test_identity_returns_a_copy(photo224):
    out = augment(photo224, PRESETS["none"], seed=0)
    assert np.array_equal(out, photo224) and out is not photo224


def test_operations_draw_independently(photo224):
    """Turning blur on must not change which rotation a seed gets."""
    a = draw_params(AugmentConfig(rotate=20), 5, 224, 224)
    b = draw_params(AugmentConfig(rotate=20, blur=1, glare=0.5), 5, 224, 224)
    assert a["rotate"] == b["rotate"]


def test_non_square_images_keep_their_shape(photos):
    img = np.asarray(photos["china"].resize((80, 50)))
    for cfg in PRESETS.values():
        assert augment(img, cfg, 1).shape == (50, 80, 3)


def test_bad_inputs_are_rejected(photo224):
    with pytest.raises(Invalid):
        augment(photo224.astype(np.float32), PRESETS["light"], 0)
    with pytest.raises(Invalid):
        augment(photo224[..., 0], PRESETS["light"], 0)
    with pytest.raises(Invalid):
        augment(photo224, PRESETS["light"], -1)


# ----------------------------------------------------------------------- each operation


def test_colour_temperature_shifts_red_blue_balance_the_right_way(photo224):
    def red_over_blue(img):
        return f32(img[..., 0]).mean() / f32(img[..., 2]).mean()

    base = red_over_blue(photo224)
    warmer = apply_params(photo224, {"temperature": {"shift": 0.1}})
    cooler = apply_params(photo224, {"temperature": {"shift": -0.1}})
    assert red_over_blue(warmer) > base * 1.15
    assert red_over_blue(cooler) < base / 1.15
    assert abs(f32(warmer[..., 1]).mean() - f32(photo224[..., 1]).mean()) < 0.5  # green untouched
    # Through augment: the sign of the drawn shift decides the direction.
    cfg = AugmentConfig(temperature=0.1)
    for seed in range(6):
        shift = draw_params(cfg, seed, 224, 224)["temperature"]["shift"]
        out = augment(photo224, cfg, seed)
        assert (red_over_blue(out) > base) == (shift > 0)


def test_rotation_keeps_size_and_fills_borders_from_the_image(photos):
    img = np.asarray(photos["china"].resize((224, 224)))
    out = apply_params(img, {"rotate": {"degrees": 30.0}})
    assert out.shape == img.shape
    assert not np.array_equal(out, img)
    # Reflected borders, not black wedges: the corners look like the photo's (bright sky).
    assert out[:10, :10].mean() > 100 and out[:10, -10:].mean() > 100
    # A quarter turn of a square image is an exact permutation of pixels (clockwise on screen).
    quarter = apply_params(img, {"rotate": {"degrees": 90.0}})
    assert np.abs(f32(quarter) - f32(np.rot90(img, k=-1))).mean() < 1.0


def test_translation_moves_content(photo224):
    out = apply_params(photo224, {"translate": {"dx": 12.0, "dy": 0.0}})
    assert np.abs(f32(out[:, 12:]) - f32(photo224[:, :-12])).mean() < 1.0


def test_scale_zooms_about_the_centre(photo224):
    out = apply_params(photo224, {"scale": {"factor": 2.0}})
    centre = np.asarray(Image.fromarray(photo224[56:168, 56:168]).resize((224, 224), Image.BILINEAR))
    assert np.abs(f32(out) - f32(centre)).mean() < 6.0  # same content (interpolation differs)
    assert np.abs(f32(out) - f32(photo224)).mean() > 20.0


def test_shear_changes_geometry_but_not_colours(photo224):
    out = apply_params(photo224, {"shear": {"degrees": 15.0}})
    assert np.abs(f32(out) - f32(photo224)).mean() > 5
    assert abs(f32(out).mean() - f32(photo224).mean()) < 6


def test_flips_are_exact_mirrors_when_enabled(photo224):
    assert np.array_equal(apply_params(photo224, {"hflip": {"flip": True}}), photo224[:, ::-1])
    assert np.array_equal(apply_params(photo224, {"vflip": {"flip": True}}), photo224[::-1])
    always = AugmentConfig(hflip=1.0)
    assert np.array_equal(augment(photo224, always, 0), photo224[:, ::-1])


def test_brightness_raises_or_lowers_the_mean(photo224):
    assert f32(apply_params(photo224, {"brightness": {"factor": 1.3}})).mean() > f32(photo224).mean() + 10
    assert f32(apply_params(photo224, {"brightness": {"factor": 0.7}})).mean() < f32(photo224).mean() - 10


def test_contrast_changes_the_spread(photo224):
    assert f32(apply_params(photo224, {"contrast": {"factor": 1.4}})).std() > f32(photo224).std() * 1.2
    assert f32(apply_params(photo224, {"contrast": {"factor": 0.6}})).std() < f32(photo224).std() * 0.8


def test_blur_lowers_high_frequency_energy(photo224):
    out = apply_params(photo224, {"blur": {"sigma": 1.5}})
    assert high_freq_energy(out) < 0.3 * high_freq_energy(photo224)
    assert abs(f32(out).mean() - f32(photo224).mean()) < 1.0
    # and through augment, every seed blurs a little at least
    cfg = AugmentConfig(blur=2.0)
    energies = [high_freq_energy(augment(photo224, cfg, s)) for s in range(6)]
    assert max(energies) <= high_freq_energy(photo224)
    assert np.mean(energies) < 0.7 * high_freq_energy(photo224)


def test_gaussian_noise_raises_variance_in_flat_regions(photos):
    china = np.asarray(photos["china"].resize((224, 224)))
    sky = (slice(0, 40), slice(0, 60))  # a flat patch of sky in the photo

    def local_std(img):  # pixel-to-neighbour differences: ignores the sky's smooth gradient
        return float(np.diff(f32(img[sky]), axis=1).std() / np.sqrt(2))

    out = apply_params(china, {"gaussian_noise": {"sigma": 8.0, "seed": 1}})
    assert local_std(china) < 3
    assert local_std(out) > local_std(china) + 5
    flat = np.full((64, 64, 3), 128, np.uint8)
    noisy = apply_params(flat, {"gaussian_noise": {"sigma": 8.0, "seed": 1}})
    assert 7.0 < f32(noisy).std() < 9.0
    assert abs(f32(noisy).mean() - 128) < 0.5


def test_sensor_noise_depends_on_brightness_and_channel():
    """Unlike Gaussian noise, sensor noise differs between shadows and highlights, and
    read noise differs per colour channel."""
    dark = np.full((64, 64, 3), 15, np.uint8)
    bright = np.full((64, 64, 3), 200, np.uint8)
    q = {"sensor_noise": {"shot": 0.05, "read": [1.0, 1.0, 1.0], "seed": 2}}
    sd_dark, sd_bright = f32(apply_params(dark, q)).std(), f32(apply_params(bright, q)).std()
    assert sd_dark > 1.5 * sd_bright > 0
    g = {"gaussian_noise": {"sigma": 5.0, "seed": 2}}
    assert abs(f32(apply_params(dark, g)).std() - f32(apply_params(bright, g)).std()) < 0.5
    q_blue = {"sensor_noise": {"shot": 0.05, "read": [1.0, 1.0, 3.0], "seed": 2}}
    out = f32(apply_params(dark, q_blue))
    assert out[..., 2].std() > 1.5 * out[..., 1].std()


def test_glare_is_a_local_bright_highlight(photo224):
    q = {"opacity": 0.8, "cx": 60.0, "cy": 150.0, "sigma_major": 20.0, "aspect": 1.5, "angle": 0.3}
    out = apply_params(photo224, {"glare": q})
    gain = f32(out).mean(axis=2) - f32(photo224).mean(axis=2)
    assert gain.min() >= -1  # only ever brightens
    peak_y, peak_x = np.unravel_index(np.argmax(gain), gain.shape)
    assert abs(peak_x - 60) <= 6 and abs(peak_y - 150) <= 6
    assert gain[150, 60] > 60  # strong at the centre...
    assert np.abs(gain[:60, 120:]).max() <= 1  # ...nothing far away


def test_moire_adds_a_periodic_coloured_pattern():
    grey = np.full((128, 128, 3), 128, np.uint8)
    q = {"amplitude": 0.2, "period": 16.0, "angle": 0.0, "curvature": 0.0, "phase": 0.0, "channel_shift": 0.8}
    out = f32(apply_params(grey, {"moire": q}))
    ratio = out[..., 1] / 128.0 - 1.0
    # Bands along x with a 16-pixel period: the spectrum is one peak at 128/16 = 8 cycles.
    spectrum = np.abs(np.fft.rfft(ratio.mean(axis=0)))
    assert int(np.argmax(spectrum[1:])) + 1 == 8
    assert spectrum[8] ** 2 > 0.9 * (spectrum[1:] ** 2).sum()
    assert 0.15 < np.abs(ratio).max() < 0.25  # amplitude as asked
    # Colour fringes: the channels are out of phase.
    assert np.abs(out[..., 0] - out[..., 2]).mean() > 10
    # On a real photo through augment: the change is spread over the image, not local.
    cfg = AugmentConfig(moire=0.3)
    assert draw_params(cfg, 0, 128, 128)["moire"]["amplitude"] > 0


# -------------------------------------------------------------------------------- preview


def test_preview_grid_is_a_png_with_the_original_first(photo224):
    png = preview_grid(photo224, PRESETS["medium"], n=8, seed=0)
    grid = Image.open(io.BytesIO(png))
    assert grid.format == "PNG"
    assert grid.width >= 3 * 224 and grid.height >= 3 * 224  # 3 x 3 cells
    first = np.asarray(grid.convert("RGB"))[4 : 4 + 224, 4 : 4 + 224]
    assert np.array_equal(first, photo224)
    assert png == preview_grid(photo224, PRESETS["medium"], n=8, seed=0)
