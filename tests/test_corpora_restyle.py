"""Restyled clip art: recipes restate every colour, flatten or keep gradients, and draw lines and finishes."""

from __future__ import annotations

import gzip
import re
import shutil
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image

from trainer.corpora import restyle
from trainer.corpora.imaging import RenderError
from trainer.corpora.restyle import (
    Restyle, discover_restyled, discover_restyled_sprites, finish, recolour, restyle_svg, sample_restyle,
)
from trainer.corpora.spec import Context

SVG = b"""<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" viewBox="0 0 100 100">
<defs>
 <linearGradient id="stops">
  <stop offset="0" style="stop-color:#000000"/><stop offset="1" stop-color="#ffffff"/>
 </linearGradient>
 <linearGradient id="g" xlink:href="#stops" x1="0" x2="1"/>
 <style>.lit { fill: #ffffff; stroke:#000000 }</style>
</defs>
<rect id="dark" x="0" y="0" width="50" height="50" fill="#101010" stroke="#000"/>
<rect id="light" x="50" y="0" width="50" height="50" style="fill:#f0f0f0;stroke:black;stroke-width:3"/>
<rect id="graded" x="0" y="50" width="50" height="50" style="fill:url(#g)"/>
<rect id="classed" class="lit" x="50" y="50" width="50" height="50"/>
</svg>"""

PALETTE = ["#200000", "#808000", "#e0ffe0"]


def _style(**over) -> Restyle:
    params = {"colours": "palette", "palette": PALETTE, "gradients": "keep", "strokes": "keep", "lines": 0,
              "outline": 0, "line_colour": "#141414", "rim": 0, "rim_colour": "#ffffff", "shadow": [], "pixels": 0,
              "ground": "", "grain": 0.0}
    return Restyle({**params, **over})


def _declared(root, ident: str) -> dict[str, str]:
    el = next(e for e in root.iter() if e.get("id") == ident)
    values = {k: v for k, v in el.attrib.items() if k in ("fill", "stroke")}
    for decl in (el.get("style") or "").split(";"):
        if ":" in decl:
            k, v = decl.split(":", 1)
            values[k.strip()] = v.strip()
    return values


def test_palette_recipe_maps_dark_to_its_darkest_and_light_to_its_lightest_everywhere():
    root = ET.fromstring(restyle_svg(_style(), SVG))
    assert _declared(root, "dark") == {"fill": "#200000", "stroke": "#200000"}
    light = _declared(root, "light")
    assert light["fill"] == "#e0ffe0" and light["stroke"] == "#200000" and light["stroke-width"] == "3"
    stops = [s for s in root.iter() if s.tag.endswith("stop")]
    assert "stop-color:#200000" in stops[0].get("style") and stops[1].get("stop-color") == "#e0ffe0"
    css = next(e for e in root.iter() if e.tag.endswith("style")).text
    assert re.search(r"fill:#e0ffe0", css) and re.search(r"stroke:#200000", css)
    assert _declared(root, "graded")["fill"] == "url(#g)"


def test_flat_gradients_become_the_mean_of_their_recoloured_stops_through_href():
    root = ET.fromstring(restyle_svg(_style(gradients="flat"), SVG))
    mean = np.mean([[0x20, 0, 0], [0xE0, 0xFF, 0xE0]], 0)
    assert _declared(root, "graded")["fill"] == "#%02x%02x%02x" % tuple(int(round(c)) for c in mean)


def test_no_stroke_recipe_removes_every_stroke():
    root = ET.fromstring(restyle_svg(_style(strokes="none"), SVG))
    assert _declared(root, "dark")["stroke"] == "none" and _declared(root, "light")["stroke"] == "none"
    assert "stroke:none" in next(e for e in root.iter() if e.tag.endswith("style")).text


def test_svgs_no_recolouring_reaches_are_refused():
    with pytest.raises(RenderError, match="raster"):
        restyle_svg(_style(), b'<svg xmlns="http://www.w3.org/2000/svg"><image href="x.png"/></svg>')
    with pytest.raises(RenderError, match="not SVG"):
        restyle_svg(_style(), b"<svg><rect></svg>")


@pytest.mark.parametrize("mode", ["palette", "duotone", "tint", "shift"])
def test_every_colour_mode_keeps_dark_darker_than_light(mode):
    drawn = (sample_restyle(np.random.default_rng([3, i])) for i in range(200))
    style = next(s for s in drawn if s.params["colours"] == mode)
    lum = lambda c: 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]
    assert lum(recolour(style, (0.05, 0.05, 0.05))) < lum(recolour(style, (0.95, 0.95, 0.95)))


def _disc(size: int = 64) -> Image.Image:
    yy, xx = np.mgrid[0:size, 0:size]
    arr = np.zeros((size, size, 4), np.uint8)
    inside = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 3) ** 2
    arr[inside] = (200, 60, 60, 255)
    arr[inside & (xx > size / 2)] = (60, 60, 200, 255)
    return Image.fromarray(arr, "RGBA")


def test_outline_rim_and_shadow_grow_the_figure_and_lines_ink_its_inner_border():
    plain = np.asarray(finish(_style(), _disc(), 96, 0))
    for over in ({"outline": 3}, {"rim": 5}, {"shadow": [4, 4, 1, 0.6]}):
        grown = np.asarray(finish(_style(**over), _disc(), 96, 0))
        # fit_object rescales the whole figure, so compare how much of the figure is the original colours.
        core = lambda a: ((a[..., 3] > 127) & ((a[..., 0] == 200) | (a[..., 2] == 200))).sum() / (a[..., 3] > 127).sum()
        assert core(grown) < core(plain) - 0.05, over
    inked = np.asarray(finish(_style(lines=3, line_colour="#141414"), _disc(), 96, 0))
    assert ((inked[..., :3] == 20).all(2) & (inked[..., 3] == 255)).sum() > 100
    assert not ((plain[..., :3] == 20).all(2)).any()


def test_ground_fills_the_square_and_grain_is_fixed_by_the_seed():
    out = np.asarray(finish(_style(ground="darkest", grain=0.05), _disc(), 96, 7))
    assert (out[..., 3] == 255).all()
    assert np.array_equal(out, np.asarray(finish(_style(ground="darkest", grain=0.05), _disc(), 96, 7)))
    assert not np.array_equal(out, np.asarray(finish(_style(ground="darkest", grain=0.05), _disc(), 96, 8)))


def test_recipes_are_reproducible_distinct_and_cover_every_axis():
    a = [sample_restyle(np.random.default_rng([0, i])) for i in range(300)]
    assert [s.key for s in a] == [sample_restyle(np.random.default_rng([0, i])).key for i in range(300)]
    assert len({s.key for s in a}) == 300
    for axis in ("colours", "gradients", "strokes", "lines", "outline", "rim", "pixels", "ground"):
        assert len({str(s.params[axis]) for s in a}) >= 2, axis
    assert any(s.params["shadow"] for s in a) and any(s.params["grain"] for s in a)


def test_discovery_draws_distinct_recipes_over_drawings_it_may_use(tmp_path):
    base = tmp_path / "usr/share/openclipart/svg"
    for folder in ("animals", "flags", "icons"):
        (base / folder).mkdir(parents=True)
    for i in range(20):
        (base / "animals" / f"a{i}.svg").write_bytes(SVG)
    (base / "flags" / "france.svg").write_bytes(SVG)
    (base / "icons" / "folder.svg").write_bytes(SVG)
    (base / "animals" / "huge.svg").write_bytes(SVG + b" " * restyle.MAX_SVG_BYTES)
    groups = list(discover_restyled(Context(root=tmp_path, restyled_styles=6)))
    assert len(groups) == 6 and len({g.name for g in groups}) == 6
    origins = {it.origin.name for g in groups for it in g.items}
    assert origins <= {f"a{i}.svg" for i in range(20)}
    for g in groups:
        assert len(g.items) == restyle.CANDIDATES_PER_GROUP and g.max_images == restyle.IMAGES_PER_GROUP
        assert all(it.content.startswith("openclipart:animals/") for it in g.items)
    assert [g.name for g in groups] == [g.name for g in discover_restyled(Context(root=tmp_path, restyled_styles=6))]


@pytest.mark.skipif(shutil.which("rsvg-convert") is None, reason="needs rsvg-convert (librsvg2-bin)")
def test_a_drawing_renders_in_its_recipe_colours_and_in_pixels(tmp_path):
    path = tmp_path / "d.svg"
    path.write_bytes(SVG)
    img = np.asarray(restyle.render_restyled(_style(gradients="flat"), path, 96, 0))
    opaque = img[img[..., 3] == 255][:, :3]
    assert {tuple(c) for c in opaque} >= {(0x20, 0, 0), (0xE0, 0xFF, 0xE0)}
    pixel = np.asarray(restyle.render_restyled(_style(pixels=20), path, 96, 0))
    assert set(np.unique(pixel[..., 3])) <= {0, 255}
    # Enlarged by a whole factor with nearest neighbour: runs of equal pixels, never a lone one.
    row = pixel[48, :, 0]
    runs = np.diff(np.flatnonzero(np.diff(row) != 0))
    assert runs.size and runs.min() >= 3


def _sprite_sheets(root, sprites_a: int = 30, sprites_b: int = 10) -> None:
    """Two KDE games: kbounce with many named sprites in one sheet, kmines with few in a gzipped one, each beside
    an Inkscape automatic id (not a sprite) and a sheet over the size limit (never read)."""
    def sheet(names):
        body = "".join(f'<rect id="{n}" x="0" y="0" width="40" height="40" fill="#305080"/>' for n in names)
        return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 100">{body}'
                f'<rect id="rect123" width="5" height="5"/></svg>').encode()
    a = root / "usr/share/kbounce/themes"
    b = root / "usr/share/kmines/themes"
    a.mkdir(parents=True)
    b.mkdir(parents=True)
    (a / "ball.svg").write_bytes(sheet([f"ball_{i}" for i in range(sprites_a)]))
    (b / "mine.svgz").write_bytes(gzip.compress(sheet([f"mine_{i}" for i in range(sprites_b)])))
    (a / "huge.svg").write_bytes(sheet(["giant"]) + b" " * restyle.MAX_SHEET_BYTES)


def test_sprite_recipes_draw_named_sprites_of_every_game_alike(tmp_path):
    _sprite_sheets(tmp_path)
    ctx = Context(root=tmp_path, restyled_styles=40)
    groups = list(discover_restyled_sprites(ctx))
    assert len(groups) == 40 and len({g.name for g in groups}) == 40
    contents = [it.content for g in groups for it in g.items]
    assert all(re.fullmatch(r"kde:(kbounce/themes/ball\.svg#ball|kmines/themes/mine\.svgz#mine)_\d+", c)
               for c in contents), "named sprites only: no automatic ids, nothing from the huge sheet"
    # Each game alike although kbounce has three times the sprites: about half the draws each.
    share = sum(c.startswith("kde:kmines") for c in contents) / len(contents)
    assert 0.4 < share < 0.6, share
    # Recipes are their own draws, not the clip-art source's recipe i again.
    assert [g.name for g in groups] == [g.name for g in discover_restyled_sprites(ctx)]
    clipart = tmp_path / "usr/share/openclipart/svg/animals"
    clipart.mkdir(parents=True)
    for i in range(20):
        (clipart / f"a{i}.svg").write_bytes(SVG)
    assert not {g.name for g in groups} & {g.name for g in discover_restyled(ctx)}


@pytest.mark.skipif(shutil.which("rsvg-convert") is None, reason="needs rsvg-convert (librsvg2-bin)")
def test_a_sprite_renders_alone_in_its_recipe_colours_from_a_gzipped_sheet(tmp_path):
    _sprite_sheets(tmp_path)
    sheet = tmp_path / "usr/share/kmines/themes/mine.svgz"
    img = np.asarray(restyle.render_restyled(_style(), sheet, 96, 0, element="mine_3"))
    opaque = img[img[..., 3] == 255][:, :3]
    assert opaque.size and {tuple(c) for c in opaque} <= {tuple(int(PALETTE[i][k:k + 2], 16) for k in (1, 3, 5))
                                                          for i in range(3)}
    with pytest.raises(RenderError):
        restyle.render_restyled(_style(), sheet, 96, 0, element="no_such_sprite")
