"""ImageNet's host-side preprocessing (PIL): the train crops and colour jitter, the test crop."""

import numpy as np

SIZE = 224
RESIZE = 256


def random_resized_crop_flip(
    image: np.ndarray, rng: np.random.Generator, size: int = SIZE,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> np.ndarray:
  """Inception-style random-resized crop to `size` plus a random flip."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  pil = Image.fromarray(np.asarray(image, np.uint8)).convert('RGB')
  w, h = pil.size
  side = min(w, h)  # Fallback: the central square.
  box = ((w - side) // 2, (h - side) // 2, (w + side) // 2, (h + side) // 2)
  for _ in range(10):
    area = w * h * rng.uniform(*scale)
    aspect = np.exp(rng.uniform(np.log(ratio[0]), np.log(ratio[1])))
    cw = int(round(np.sqrt(area * aspect)))
    ch = int(round(np.sqrt(area / aspect)))
    if 0 < cw <= w and 0 < ch <= h:
      x0 = int(rng.integers(0, w - cw + 1))
      y0 = int(rng.integers(0, h - ch + 1))
      box = (x0, y0, x0 + cw, y0 + ch)
      break
  pil = pil.resize((size, size), Image.BILINEAR, box=box)
  out = np.asarray(pil, np.uint8)
  return out[:, ::-1] if rng.random() < 0.5 else out


def color_jitter(image: np.ndarray, rng: np.random.Generator, brightness: float,
                 contrast: float, saturation: float, hue: float) -> np.ndarray:
  """torchvision's ColorJitter on a uint8 RGB image: each factor drawn uniformly
  from [max(0, 1 - s), 1 + s] (hue: a shift in [-hue, hue] of a turn), the four
  adjustments in random order, with PIL's enhancers as torchvision's PIL path."""
  from PIL import Image, ImageEnhance  # pylint: disable=g-import-not-at-top
  pil = Image.fromarray(np.asarray(image, np.uint8))

  def enhance(enhancer, strength):
    factor = rng.uniform(max(0.0, 1 - strength), 1 + strength)
    return lambda img: enhancer(img).enhance(factor)

  def shift_hue(img):
    h, s, v = img.convert('HSV').split()
    shift = int(round(rng.uniform(-hue, hue) * 255))
    h = Image.fromarray((np.asarray(h, np.int16) + shift).astype(np.uint8))  # Wraps.
    return Image.merge('HSV', (h, s, v)).convert('RGB')

  adjustments = [(brightness, enhance(ImageEnhance.Brightness, brightness)),
                 (contrast, enhance(ImageEnhance.Contrast, contrast)),
                 (saturation, enhance(ImageEnhance.Color, saturation)), (hue, shift_hue)]
  for i in rng.permutation(len(adjustments)):
    strength, adjust = adjustments[i]
    if strength > 0:  # As torchvision, a zero strength skips the adjustment.
      pil = adjust(pil)
  return np.asarray(pil, np.uint8)


def resize_center_crop(image: np.ndarray, resize: int = RESIZE,
                       size: int = SIZE) -> np.ndarray:
  """Resizes the shorter side to `resize`, then center-crops `size`."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  pil = Image.fromarray(np.asarray(image, np.uint8)).convert('RGB')
  w, h = pil.size
  s = resize / min(w, h)
  nw, nh = max(size, round(w * s)), max(size, round(h * s))
  pil = pil.resize((nw, nh), Image.BILINEAR)
  x0, y0 = (nw - size) // 2, (nh - size) // 2
  return np.asarray(pil.crop((x0, y0, x0 + size, y0 + size)), np.uint8)
