#!/usr/bin/env bash
# Compile-time benchmark: N structs of 10 fields each, built with #[derive(ComponentModel)],
# with #[derive(AsyncAssign)] (every field `fetch_from = "env"`), and with
# #[derive(serde::Deserialize)] (the baseline; with `Default, Debug` like the async crate),
# in the same run; and `nested`: T trees of 3 levels with 50 leaf fields each (a root with
# 2 fields and 3 nested structs of 6 fields, each with a nested struct of 10) against T
# flat structs with the same 50 fields, for AsyncAssign and for serde (same shapes), and the
# tree again with `#[component(nested_only)]` on its six inner structs (no fetch methods of
# their own; built in turn with the flat crate like each pair). Leaf
# types come in pairs within each struct, so neither layout gets per-type AsyncAssign impls
# and the comparison is of the nesting alone.
# Incremental compilation is off: every build runs the whole front end (a clean build, CI).
# Dependencies are built first; only the generated crate is timed (median of RUNS rebuilds).
#
#   scripts/compile_bench.sh            # N=50, RUNS=5
#   N=100 RUNS=3 T=10 scripts/compile_bench.sh
#   ONLY=nested T=1 RUNS=9 scripts/compile_bench.sh   # the tree/flat comparison alone
#   ONLY=flat N=50 RUNS=3 scripts/compile_bench.sh     # the 50 × 10 comparison with serde alone
#   ONLY=rules N=50 RUNS=5 scripts/compile_bench.sh    # 50 × 10 fields with one validation rule
#                                                      # each, against the same without rules
#                                                      # and serde, built in turn
set -euo pipefail
export CARGO_INCREMENTAL=0
N=${N:-50}
RUNS=${RUNS:-5}
T=${T:-10}
root=$(cd "$(dirname "$0")/.." && pwd)
work="$root/target/compile-bench"
rm -rf "$work/cm" "$work/serde" "$work/async" "$work/serde_dd" "$work/tree" "$work/flat" "$work/stree" "$work/sflat" "$work/tree_no" "$work/rules"
mkdir -p "$work/cm/src" "$work/serde/src" "$work/async/src" "$work/serde_dd/src" "$work/tree/src" "$work/flat/src" "$work/stree/src" "$work/sflat/src" "$work/tree_no/src" "$work/rules/src"

cat > "$work/Cargo.toml" <<TOML
[workspace]
resolver = "3"
members = ["cm", "serde", "async", "serde_dd", "tree", "flat", "stree", "sflat", "tree_no", "rules"]
TOML
for k in tree flat stree sflat tree_no rules; do
cat > "$work/$k/Cargo.toml" <<TOML
[package]
name = "bench_$k"
version = "0.0.0"
edition = "2024"
[dependencies]
component_model = { path = "$root/component_model", features = ["async"] }
serde = { version = "1", features = ["derive"] }
TOML
done
cat > "$work/cm/Cargo.toml" <<TOML
[package]
name = "bench_cm"
version = "0.0.0"
edition = "2024"
[dependencies]
component_model = { path = "$root/component_model" }
TOML
cat > "$work/async/Cargo.toml" <<TOML
[package]
name = "bench_async"
version = "0.0.0"
edition = "2024"
[dependencies]
component_model = { path = "$root/component_model", features = ["async"] }
TOML
cat > "$work/serde_dd/Cargo.toml" <<TOML
[package]
name = "bench_serde_dd"
version = "0.0.0"
edition = "2024"
[dependencies]
serde = { version = "1", features = ["derive"] }
TOML
cat > "$work/serde/Cargo.toml" <<TOML
[package]
name = "bench_serde"
version = "0.0.0"
edition = "2024"
[dependencies]
serde = { version = "1", features = ["derive"] }
TOML

gen() { # $1 = derive path, $2 = attribute on every field (may be empty)
  echo "#![allow(dead_code)]"
  for i in $(seq 1 "$N"); do
    echo "#[derive($1)]"
    echo "pub struct S$i {"
    local types=(String u8 u16 u32 u64 i8 i16 "Vec<String>" "Option<u64>" bool)
    for f in $(seq 0 9); do
      echo "  $2 pub f$f: ${types[$f]},"
    done
    echo "}"
  done
}
gen "component_model::ComponentModel, Default" "" > "$work/cm/src/lib.rs"
gen "serde::Deserialize" "" > "$work/serde/src/lib.rs"
gen "component_model::AsyncAssign, Default, Debug" '#[component(fetch_from = "env")]' > "$work/async/src/lib.rs"
gen "serde::Deserialize, Default, Debug" "" > "$work/serde_dd/src/lib.rs"
types_flat=(String u8 u16 u32 u64 i8 i16 "Vec<String>" "Option<u64>" bool)
# The async structs with one validation rule per field, one that applies to its type.
rules=('len(max = 64)' 'range(max = 200)' 'range(min = 1)' 'range(max = 10)' 'range(min = 1, max = 99)'
       'range(min = -5)' 'one_of = [1, 2]' 'non_empty' 'range(max = 10)' 'with = ok')
{
  echo "#![allow(dead_code)]"
  echo "fn ok<T>(_: &T) -> Result<(), &'static str> { Ok(()) }"
  for i in $(seq 1 "$N"); do
    echo "#[derive(component_model::AsyncAssign, Default, Debug)]"
    echo "pub struct S$i {"
    for f in $(seq 0 9); do
      echo "  #[component(fetch_from = \"env\", validate(${rules[$f]}))] pub f$f: ${types_flat[$f]},"
    done
    echo "}"
  done
} > "$work/rules/src/lib.rs"

types=(String u8 u16 u32 u64 i8 i16 "Vec<String>" "Option<u64>" bool)
field() { # $1 = name, $2 = index: fields 2k and 2k+1 share a type
  echo "  #[component(fetch_from = \"env\")] pub $1: ${types[$((($2 / 2) % 10))]},"
}
gen_tree() { # T roots, each 2 fields + 3 × (6 fields + nested 10 fields) = 50 leaves; $1 = attribute on inner structs
  local inner=${1:-}
  echo "#![allow(dead_code)]"
  echo "use component_model::AsyncAssign;"
  for t in $(seq 1 "$T"); do
    for b in 1 2 3; do
      echo "#[derive(AsyncAssign, Default, Debug)] $inner pub struct L3_${t}_$b {"
      for f in $(seq 0 9); do field "f$f" "$f"; done
      echo "}"
      echo "#[derive(AsyncAssign, Default, Debug)] $inner pub struct L2_${t}_$b {"
      for f in $(seq 0 5); do field "f$f" "$f"; done
      echo "  #[component(nested)] pub inner: L3_${t}_$b,"
      echo "}"
    done
    echo "#[derive(AsyncAssign, Default, Debug)] pub struct Root$t {"
    for f in $(seq 0 1); do field "f$f" "$f"; done
    for b in 1 2 3; do echo "  #[component(nested)] pub b$b: L2_${t}_$b,"; done
    echo "}"
  done
}
gen_flat() { # T structs of the same 50 leaves
  echo "#![allow(dead_code)]"
  echo "use component_model::AsyncAssign;"
  for t in $(seq 1 "$T"); do
    echo "#[derive(AsyncAssign, Default, Debug)] pub struct Flat$t {"
    for f in $(seq 0 49); do field "f$f" "$f"; done
    echo "}"
  done
}
gen_tree > "$work/tree/src/lib.rs"
gen_tree '#[component(nested_only)]' > "$work/tree_no/src/lib.rs"
gen_flat > "$work/flat/src/lib.rs"
as_serde() { # the same structs with serde's derive and no attributes
  sed -e 's/AsyncAssign, Default, Debug/serde::Deserialize, Default, Debug/' \
      -e 's/#\[component(fetch_from = "env")\] //' -e 's/#\[component(nested)\] //' \
      -e '/^use component_model::AsyncAssign;/d'
}
as_serde < "$work/tree/src/lib.rs" > "$work/stree/src/lib.rs"
as_serde < "$work/flat/src/lib.rs" > "$work/sflat/src/lib.rs"

cd "$work"
pkgs=(-p bench_cm -p bench_serde -p bench_async -p bench_serde_dd -p bench_tree -p bench_flat -p bench_stree -p bench_sflat -p bench_tree_no -p bench_rules)
cargo build -q "${pkgs[@]}" 2>/dev/null || cargo build "${pkgs[@]}"

build_once() { # $1 = package, $2 = dir; prints seconds
  touch "$2/src/lib.rs"
  local t0 t1
  t0=$(date +%s.%N)
  cargo build -q -p "$1"
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc -l
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
time_build() { # $1 = package, $2 = dir; prints median seconds
  for _ in $(seq 1 "$RUNS"); do build_once "$1" "$2"; done | median
}
# Two packages built in turn (A, B, A, B, ...), so that a machine slowing down or
# speeding up during the run moves both alike; prints "medianA medianB".
time_pair() { # $1 $2 = package and dir A, $3 $4 = package and dir B
  local a=() b=()
  for _ in $(seq 1 "$RUNS"); do
    a+=("$(build_once "$1" "$2")")
    b+=("$(build_once "$3" "$4")")
  done
  echo "$(printf '%s\n' "${a[@]}" | median) $(printf '%s\n' "${b[@]}" | median)"
}

if [ "${ONLY:-}" = rules ]; then
  ru=() as=() sdd=()
  for _ in $(seq 1 "$RUNS"); do
    ru+=("$(build_once bench_rules rules)")
    as+=("$(build_once bench_async async)")
    sdd+=("$(build_once bench_serde_dd serde_dd)")
  done
  ru=$(printf '%s\n' "${ru[@]}" | median)
  as=$(printf '%s\n' "${as[@]}" | median)
  sdd=$(printf '%s\n' "${sdd[@]}" | median)
  printf 'structs=%s fields=10 runs=%s (built in turn)\n' "$N" "$RUNS"
  printf 'AsyncAssign, one rule per field: %.3f s (median)\n' "$ru"
  printf 'AsyncAssign, no rules: %.3f s (median)\n' "$as"
  printf 'serde::Deserialize (+Default, Debug): %.3f s (median)\n' "$sdd"
  printf 'ratio rules / serde = %.2f; no rules / serde = %.2f; rules / no rules = %.2f\n' \
    "$(echo "$ru / $sdd" | bc -l)" "$(echo "$as / $sdd" | bc -l)" "$(echo "$ru / $as" | bc -l)"
  exit 0
fi
if [ "${ONLY:-}" != nested ]; then
cm=$(time_build bench_cm cm)
sd=$(time_build bench_serde serde)
as=$(time_build bench_async async)
sdd=$(time_build bench_serde_dd serde_dd)
printf 'structs=%s fields=10 runs=%s\n' "$N" "$RUNS"
printf 'ComponentModel build: %.3f s (median)\n' "$cm"
printf 'serde::Deserialize build: %.3f s (median)\n' "$sd"
printf 'ratio ComponentModel / serde = %.2f\n' "$(echo "$cm / $sd" | bc -l)"
printf 'AsyncAssign (+Default, Debug; every field fetch_from = "env") build: %.3f s (median)\n' "$as"
printf 'serde::Deserialize (+Default, Debug) build: %.3f s (median)\n' "$sdd"
printf 'ratio AsyncAssign / serde = %.2f\n' "$(echo "$as / $sdd" | bc -l)"
fi
[ "${ONLY:-}" = flat ] && exit 0
read -r tr fl <<<"$(time_pair bench_tree tree bench_flat flat)"
printf 'nested: %s trees of 3 levels, 50 leaves each: %.3f s (median)\n' "$T" "$tr"
printf 'flat: %s structs of the same 50 fields: %.3f s (median)\n' "$T" "$fl"
printf 'ratio tree / flat = %.2f\n' "$(echo "$tr / $fl" | bc -l)"
read -r tn fl2 <<<"$(time_pair bench_tree_no tree_no bench_flat flat)"
printf 'nested_only on the inner structs: tree %.3f s, flat %.3f s, ratio tree / flat = %.2f\n' "$tn" "$fl2" "$(echo "$tn / $fl2" | bc -l)"
read -r st sf <<<"$(time_pair bench_stree stree bench_sflat sflat)"
printf 'serde (same shapes): tree %.3f s, flat %.3f s, ratio tree / flat = %.2f\n' "$st" "$sf" "$(echo "$st / $sf" | bc -l)"
