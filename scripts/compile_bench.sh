#!/usr/bin/env bash
# Compile-time benchmark: N structs of 10 fields each, built once with
# #[derive(ComponentModel)] and once with #[derive(serde::Deserialize)], in the same run.
# Dependencies are built first; only the generated crate is timed (median of RUNS rebuilds).
#
#   scripts/compile_bench.sh            # N=50, RUNS=5
#   N=100 RUNS=3 scripts/compile_bench.sh
set -euo pipefail
N=${N:-50}
RUNS=${RUNS:-5}
root=$(cd "$(dirname "$0")/.." && pwd)
work="$root/target/compile-bench"
rm -rf "$work/cm" "$work/serde"
mkdir -p "$work/cm/src" "$work/serde/src"

cat > "$work/Cargo.toml" <<TOML
[workspace]
resolver = "3"
members = ["cm", "serde"]
TOML
cat > "$work/cm/Cargo.toml" <<TOML
[package]
name = "bench_cm"
version = "0.0.0"
edition = "2024"
[dependencies]
component_model = { path = "$root/component_model" }
TOML
cat > "$work/serde/Cargo.toml" <<TOML
[package]
name = "bench_serde"
version = "0.0.0"
edition = "2024"
[dependencies]
serde = { version = "1", features = ["derive"] }
TOML

gen() { # $1 = derive path
  echo "#![allow(dead_code)]"
  for i in $(seq 1 "$N"); do
    echo "#[derive($1)]"
    echo "pub struct S$i {"
    echo "  pub f0: String, pub f1: u8, pub f2: u16, pub f3: u32, pub f4: u64,"
    echo "  pub f5: i8, pub f6: i16, pub f7: Vec<String>, pub f8: Option<u64>, pub f9: bool,"
    echo "}"
  done
}
gen "component_model::ComponentModel, Default" > "$work/cm/src/lib.rs"
gen "serde::Deserialize" > "$work/serde/src/lib.rs"

cd "$work"
cargo build -q -p bench_cm -p bench_serde 2>/dev/null || cargo build -p bench_cm -p bench_serde

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
ratio=$(echo "$cm / $sd" | bc -l)
printf 'structs=%s fields=10 runs=%s\n' "$N" "$RUNS"
printf 'ComponentModel build: %.3f s (median)\n' "$cm"
printf 'serde::Deserialize build: %.3f s (median)\n' "$sd"
printf 'ratio ComponentModel / serde = %.2f\n' "$ratio"
