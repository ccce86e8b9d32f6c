"""Image tokenizer: shapes, preprocessing, conversions and bad inputs (tiny random VQ-VAE)."""

import numpy as np
import pytest
import torch
from PIL import Image

from icetk import IceTokenizer, ImageNormalization, resize_center_crop
from icetk.preprocess import pil_to_rgb, to_float_tensor


@pytest.mark.parametrize(("size", "side"), [(160, 20), (480, 60)])
def test_encode_decode_shapes_at_compression_8(
    tiny_tokenizer: IceTokenizer, size: int, side: int
) -> None:
    x = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    ids = tiny_tokenizer.encode_image(x)
    assert ids.shape == (2, side, side) and ids.dtype == torch.long
    assert ids.min() >= 0 and ids.max() < tiny_tokenizer.num_image_tokens
    out = tiny_tokenizer.decode_image(ids)
    assert out.shape == (2, 3, size, size) and out.dtype == torch.float32
    flat = tiny_tokenizer.decode_image(ids.flatten(1))  # (B, N) is reshaped to a square
    assert torch.allclose(flat, out)
    assert tiny_tokenizer.decode_image(ids[0].flatten()).shape == (1, 3, size, size)


def test_compression_16_uses_the_second_level(tiny_tokenizer: IceTokenizer) -> None:
    ids = tiny_tokenizer.encode_image(torch.rand(1, 3, 64, 64), compression=16)
    assert ids.shape == (1, 4, 4)
    assert tiny_tokenizer.decode_image(ids, compression=16).shape == (1, 3, 64, 64)
    with pytest.raises(ValueError, match=r"compression must be one of"):
        tiny_tokenizer.encode_image(torch.rand(1, 3, 32, 32), compression=4)


def test_decode_pt_is_unclamped_and_pil_is_clamped(tiny_tokenizer: IceTokenizer) -> None:
    ids = torch.randint(0, 64, (1, 4, 4), generator=torch.Generator().manual_seed(0))
    pt = tiny_tokenizer.decode_image(ids)
    (pil,) = tiny_tokenizer.decode_image(ids, output="pil")
    assert pil.mode == "RGB" and pil.size == (32, 32)
    expected = (pt[0] * 255 + 0.5).clamp(0, 255).to(torch.uint8).permute(1, 2, 0)
    assert torch.equal(torch.from_numpy(np.array(pil)), expected)
    # untrained weights give values outside [0, 1]; the tensor output must keep them
    assert pt.min() < 0 or pt.max() > 1


def test_encode_is_the_model_applied_to_normalised_input(tiny_tokenizer: IceTokenizer) -> None:
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    model = tiny_tokenizer.image.model
    xn = ImageNormalization().normalize(x)
    mean = torch.tensor([0.79093, 0.76271, 0.75340]).view(1, 3, 1, 1)
    std = torch.tensor([0.30379, 0.32279, 0.32800]).view(1, 3, 1, 1)
    assert torch.allclose(xn, (x - mean) / std)
    assert torch.equal(tiny_tokenizer.encode_image(x), model.single_encode(xn, 0))


def test_pil_path_and_tensor_inputs_agree(tiny_tokenizer: IceTokenizer, tmp_path) -> None:
    arr = (torch.rand(32, 32, 3, generator=torch.Generator().manual_seed(1)) * 255).to(torch.uint8)
    pil = Image.fromarray(arr.numpy())
    pil.save(tmp_path / "a.png")
    t = arr.permute(2, 0, 1).float() / 255
    a = tiny_tokenizer.encode_image(pil)
    assert torch.equal(a, tiny_tokenizer.encode_image(tmp_path / "a.png"))
    assert torch.equal(a, tiny_tokenizer.encode_image(str(tmp_path / "a.png")))
    assert torch.equal(a, tiny_tokenizer.encode_image(t))
    both = tiny_tokenizer.encode_image([pil, t[None][0]])
    assert both.shape == (2, 4, 4) and torch.equal(both[0], a[0])


def test_resize_center_crop_geometry() -> None:
    x = torch.arange(2 * 40 * 80, dtype=torch.float32).view(2, 40, 80)
    assert resize_center_crop(x, 40).shape == (2, 40, 40)
    assert torch.equal(resize_center_crop(x, 40), x[:, :, 20:60])  # no resize needed: pure crop
    y = resize_center_crop(torch.rand(3, 100, 50), 32)
    assert y.shape == (3, 32, 32)


def test_image_size_resizes_non_square_input(tiny_tokenizer: IceTokenizer) -> None:
    pil = Image.new("RGB", (70, 45), (200, 30, 30))
    ids = tiny_tokenizer.encode_image(pil, image_size=32)
    assert ids.shape == (1, 4, 4)


def test_grayscale_palette_and_rgba_are_converted() -> None:
    gray = Image.new("L", (4, 4), 128)
    assert pil_to_rgb(gray).getpixel((0, 0)) == (128, 128, 128)
    pal = Image.new("P", (4, 4), 0)
    pal.putpalette([10, 20, 30] + [0] * 765)
    assert pil_to_rgb(pal).getpixel((1, 1)) == (10, 20, 30)
    rgba = Image.new("RGBA", (4, 4), (0, 0, 0, 0))  # fully transparent black → white
    assert pil_to_rgb(rgba).getpixel((0, 0)) == (255, 255, 255)
    half = Image.new("RGBA", (4, 4), (0, 0, 0, 128))
    assert pil_to_rgb(half).getpixel((0, 0)) == (127, 127, 127)
    t = to_float_tensor(torch.tensor([0.0, 0.0, 0.0, 0.0]).view(4, 1, 1))
    assert torch.equal(t.flatten(), torch.ones(3))  # tensor RGBA also composites on white
    assert to_float_tensor(torch.full((1, 2, 2), 0.5)).shape == (3, 2, 2)


def test_grayscale_and_rgba_images_encode(tiny_tokenizer: IceTokenizer) -> None:
    for im in (
        Image.new("L", (32, 32), 90),
        Image.new("RGBA", (32, 32), (9, 9, 9, 100)),
        Image.new("1", (32, 32)),
    ):
        assert tiny_tokenizer.encode_image(im).shape == (1, 4, 4)


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (Image.new("RGB", (0, 10)), "zero size"),
        (torch.rand(3, 0, 8), "zero size"),
        (torch.randint(0, 255, (3, 8, 8), dtype=torch.uint8), "floating point"),
        (torch.rand(2, 8, 8), "C in"),
        (torch.rand(3, 36, 36), "not a multiple of compression"),
        ([], "no images"),
        ([torch.rand(3, 8, 8), torch.rand(3, 16, 16)], "different sizes"),
    ],
)
def test_bad_images_raise_clear_errors(tiny_tokenizer: IceTokenizer, bad, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        tiny_tokenizer.encode_image(bad)


def test_missing_and_corrupt_image_files(tiny_tokenizer: IceTokenizer, tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope.png"):
        tiny_tokenizer.encode_image(tmp_path / "nope.png")
    (tmp_path / "junk.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"junk.png"):
        tiny_tokenizer.encode_image(tmp_path / "junk.png")


@pytest.mark.parametrize(
    ("ids", "match"),
    [
        (torch.tensor([[64, 0, 0, 0]]), r"\[0, 64\), got min 0, max 64"),
        (torch.tensor([[-1, 0, 0, 0]]), "got min -1"),
        (torch.zeros(1, 5, dtype=torch.long), "square grid"),
        (torch.zeros(1, 4, dtype=torch.float32), "integers"),
        (torch.zeros(0, dtype=torch.long), "empty"),
        (torch.zeros(1, 1, 2, 2, dtype=torch.long), "shape"),
    ],
)
def test_bad_ids_raise_clear_errors(
    tiny_tokenizer: IceTokenizer, ids: torch.Tensor, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        tiny_tokenizer.decode_image(ids)


def test_bad_output_kind(tiny_tokenizer: IceTokenizer) -> None:
    with pytest.raises(ValueError, match=r"output must be"):
        tiny_tokenizer.decode_image(torch.zeros(1, 4, dtype=torch.long), output="numpy")


def test_codebook_is_a_copy(tiny_tokenizer: IceTokenizer) -> None:
    cb = tiny_tokenizer.codebook
    assert cb.shape == (64, 16) and cb.dtype == torch.float32
    cb.zero_()
    assert tiny_tokenizer.codebook.abs().sum() > 0


def test_low_precision_model_encodes_and_decodes() -> None:
    from icetk import HVQVAE, ImageTokenizer, VQVAEConfig

    torch.manual_seed(0)
    model = HVQVAE(VQVAEConfig.tiny())
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    ref = ImageTokenizer(model).encode_image(x)
    half = ImageTokenizer(model.to(torch.bfloat16))
    ids = half.encode_image(x)
    assert ids.shape == ref.shape and (ids == ref).float().mean() > 0.5  # bf16 may flip near-ties
    out = half.decode_image(ids)
    assert out.dtype == torch.float32 and out.shape == (1, 3, 32, 32)
