#!/usr/bin/env bash
# Compile-time benchmark: N structs of 10 fields each, built with #[derive(ComponentModel)],
# with #[derive(AsyncAssign)] (every field `fetch_from = "env"`), and with
# #[derive(serde::Deserialize)] (the baseline; with `Default, Debug` like the async crate),
# in the same run.
# Dependencies are built first; only the generated crate is timed (median of RUNS rebuilds).
#
#   scripts/compile_bench.sh            # N=50, RUNS=5
#   N=100 RUNS=3 scripts/compile_bench.sh
set -euo pipefail
N=${N:-50}
RUNS=${RUNS:-5}
root=$(cd "$(dirname "$0")/.." && pwd)
work="$root/target/compile-bench"
rm -rf "$work/cm" "$work/serde" "$work/async" "$work/serde_dd"
mkdir -p "$work/cm/src" "$work/serde/src" "$work/async/src" "$work/serde_dd/src"

cat > "$work/Cargo.toml" <<TOML
[workspace]
resolver = "3"
members = ["cm", "serde", "async", "serde_dd"]
TOML
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

cd "$work"
cargo build -q -p bench_cm -p bench_serde -p bench_async -p bench_serde_dd 2>/dev/null \
  || cargo build -p bench_cm -p bench_serde -p bench_async -p bench_serde_dd

time_build() { # $1 = package, $2 = dir; prints median seconds
  local samples=()
  for _ in $(seq 1 "$RUNS"); do
    touch "$2/src/lib.rs"
    local t0 t1
    t0=$(date +%s.%N)
    cargo build -q -p "$1"
    t1=$(date +%s.%N)
    samples+=("$(echo "$t1 - $t0" | bc -l)")
  done
  printf '%s\n' "${samples[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}

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
