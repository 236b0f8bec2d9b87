#!/usr/bin/env bash
# Every data set issue 10's figures are measured on, rebuilt from Debian packages on a machine that has none
# of them, and the GPU lease's pack. A session starts from a bare machine: by hand this took most of an hour
# of waiting in the right order; here the one long build (the restyled clip art, about 45 minutes on 2 cores)
# starts as soon as its one package is in, and the rest build beside it.
#
#   sudo bench/rebuild_data.sh            # in the repository root, after the README's setup (.venv)
#
# Writes data/ (git-ignored): corpus4 (the training corpus), corpus-new4 (the 17 validation sources),
# jpeg4 (their JPEG variant), corpus-more4, corpus-warmux, corpus-chess (held-out tests), ood-v2, ood-wide and
# ood-wide-d (the independent benchmark: 40 chosen icon names, every name 14 themes draw, and the same without a
# theme's near-identical drawings), corpus-restyled, corpus-sprites (the restyled sprites); runs/restyled/whiten-fit4.csv,
# pack.csv and pack-both.csv; .gpu/corpus-restyled.tar (the third lease's pack), .gpu/corpus-both.tar (the next
# lease's: both restyled sources) and .gpu/site (what bench/gpu_session.sh needs on the GPU machine). DATA.md
# gives the counts each should have.
set -euo pipefail
PY=${PY:-.venv/bin/python}
LOGS=runs/rebuild
mkdir -p data "$LOGS" runs/restyled .gpu/site
export DEBIAN_FRONTEND=noninteractive

apt-get update -q > "$LOGS/apt.log"
apt-get install -y -q --no-install-recommends librsvg2-bin openclipart-svg >> "$LOGS/apt.log"
$PY -m trainer.corpora build --out data/corpus-restyled --sources restyled --restyled-styles 8000 \
  > "$LOGS/restyled.log" 2>&1 &
RESTYLED=$!

# shellcheck disable=SC2046  # the package lists are meant to split into words
apt-get install -y -q --no-install-recommends $($PY -c "from trainer.corpora.card import install_command as c; print(c().split(' ', 3)[3])") \
  $($PY bench/ood_benchmark.py packages | cut -d' ' -f4-) >> "$LOGS/apt.log"
# The restyled sprites redraw the KDE games' sheets, which the line above installs (16 minutes).
$PY -m trainer.corpora build --out data/corpus-sprites --sources restyled-sprites --restyled-styles 2000 \
  > "$LOGS/sprites.log" 2>&1 &
SPRITES=$!
NEW=0ad,blobwars,crawl,endless-sky,extremetuxracer,flare,freedroidrpg,lincity-ng,megaglest,minetest,naev,neverball,stellarium,supertux,teeworlds,warzone2100,widelands
build() { nice -n 5 $PY -m trainer.corpora build --out "data/$1" --sources "$2" > "$LOGS/$1.log" 2>&1; }
build corpus4 openclipart,kde-games,hedgewars,freeciv,pingus,frozen-bubble,wesnoth,wallpapers,procedural,fonts
build corpus-new4 "$NEW"
build corpus-more4 cataclysm,freecol,redeclipse
build corpus-warmux warmux
build corpus-chess chess-pieces
nice -n 5 $PY bench/ood_benchmark.py build data/ood-v2 > "$LOGS/ood-v2.log" 2>&1
nice -n 5 $PY bench/ood_benchmark.py build data/ood-wide --min-themes 14 > "$LOGS/ood-wide.log" 2>&1
nice -n 5 $PY bench/ood_benchmark.py build data/ood-wide-d --min-themes 14 --distinct-drawings \
  > "$LOGS/ood-wide-d.log" 2>&1
$PY bench/jpeg_variant.py data/corpus-new4/manifest.csv data/jpeg4 --quality 80 > "$LOGS/jpeg4.log"
$PY -m trainer.corpora select data/corpus4/manifest.csv --out runs/restyled/whiten-fit4.csv --cap procedural=3

wait "$RESTYLED" "$SPRITES"
$PY -m trainer.corpora select data/corpus4/manifest.csv data/corpus-new4/manifest.csv \
  data/corpus-restyled/manifest.csv --out runs/restyled/pack.csv --cap procedural=8 --cap restyled=4
$PY -m trainer.corpora pack runs/restyled/pack.csv .gpu/corpus-restyled.tar --input-size 64 --quality 70
$PY -m trainer.corpora select data/corpus4/manifest.csv data/corpus-new4/manifest.csv \
  data/corpus-restyled/manifest.csv data/corpus-sprites/manifest.csv --out runs/restyled/pack-both.csv \
  --cap procedural=8 --cap restyled=3 --cap restyled-sprites=3
$PY -m trainer.corpora pack runs/restyled/pack-both.csv .gpu/corpus-both.tar --input-size 64 --quality 70
cp -r "$($PY -c 'import platformdirs, os; print(os.path.dirname(platformdirs.__file__))')" .gpu/site/
for d in corpus4 corpus-new4 corpus-more4 corpus-warmux corpus-chess corpus-restyled corpus-sprites jpeg4; do
  echo "$d: $(($(wc -l < "data/$d/manifest.csv") - 1)) images"
done
