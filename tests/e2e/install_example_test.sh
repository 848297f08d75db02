#!/usr/bin/env bash
# Installs ssld to a temporary prefix, builds the SDK's out-of-tree example plugin against
# the installed package (find_package(ssld)), and checks that the installed host finds its
# built-in plugins and loads the example. Also checks that plugins export only the handshake.
# Usage: install_example_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1
source=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cmake --install "$build" --prefix "$work/prefix" >/dev/null
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
cmake -S "$source/sdk/example" -B "$work/example" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$work/prefix" >"$work/configure.log" 2>&1 || { cat "$work/configure.log"; exit 1; }
cmake --build "$work/example" >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }

listing=$(SSLD_PLUGIN_PATH="$work/example" "$work/prefix/bin/ssld" plugins)
grep -q "^student tiny_mlp  \[tiny_mlp 1.0.0, $work/example/libtiny_mlp.so\]" <<<"$listing" \
  || { echo "example plugin not listed:"; echo "$listing"; exit 1; }
grep -q "^student small_cnn  \[small_cnn .*, $work/prefix/lib/ssld/plugins/" <<<"$listing" \
  || { echo "installed built-in plugins not found:"; echo "$listing"; exit 1; }

cat >"$work/mlp.toml" <<TOML
[plugins]
paths = ["example"]
[run]
device = "cpu"
[student]
type = "tiny_mlp"
hidden = 32
TOML
checked=$("$work/prefix/bin/ssld" check "$work/mlp.toml")
grep -q "stage main: student tiny_mlp" <<<"$checked" || { echo "check of a tiny_mlp config:"; echo "$checked"; exit 1; }

for plugin in "$work/example/libtiny_mlp.so" "$work"/prefix/lib/ssld/plugins/*.so; do
  exported=$(nm -D --defined-only "$plugin" | awk '{print $3}' | grep -v '^ssld_plugin_\(info\|register\)_v1$' || true)
  if [ -n "$exported" ]; then
    echo "$plugin exports more than the handshake:"; echo "$exported" | head; exit 1
  fi
done
# README's "Write a plugin" shows the example in full: it must be the file that was just built.
for file in tiny_mlp.cpp CMakeLists.txt; do
  awk -v name="\`$file\`:" '$0 == name {grab = 1; next} grab && /^```/ {if (inside) exit; inside = 1; next} inside' \
    "$source/README.md" | diff - "$source/sdk/example/$file" >/dev/null \
    || { echo "README.md's copy of sdk/example/$file differs from the file"; exit 1; }
done
echo "install + out-of-tree example plugin: ok"
