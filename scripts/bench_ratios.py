#!/usr/bin/env python3
"""Prints the ratios BENCHMARKS.md reports, from criterion's estimates of the last
`cargo bench -p component_model_benches` run (target/criterion/<group>/<bench>/new).

The estimate is criterion's mean; `ESTIMATE=median` (or `slope`) picks another one — the
median holds better on a shared, noisy machine, where a few slow samples move the mean.
`CRITERION_DIR=<dir>` reads a saved copy of target/criterion instead."""
import json
import os
import pathlib
import sys

root = pathlib.Path(os.environ.get("CRITERION_DIR") or pathlib.Path(__file__).resolve().parent.parent / "target" / "criterion")
estimate = os.environ.get("ESTIMATE", "mean")


def mean_ns(group, bench, required=True):
    p = root / group / bench / "new" / "estimates.json"
    try:
        e = json.loads(p.read_text())
        return (e.get(estimate) or e["mean"])["point_estimate"]
    except FileNotFoundError:
        if required:
            sys.exit(f"missing {p}: run `cargo bench -p component_model_benches` first")
        return None


def show(label, num, den, goal=None):
    r = num / den
    g = f"  (goal <= {goal})" if goal else ""
    print(f"{label:<58} {num/1e3:10.2f} us / {den/1e3:10.2f} us = {r:6.3f}{g}")


lat = {b: mean_ns("latency_20ms", b, required=False) for b in ("fetch_all_16", "slowest_single_field", "sequential_16")}
if None not in lat.values():
    show("fetch_all_components(16 x 20ms) / slowest single field", lat["fetch_all_16"], lat["slowest_single_field"], 1.10)
    show("fetch_all_components(16 x 20ms) / sequential sum", lat["fetch_all_16"], lat["sequential_16"])
ov = {b: mean_ns("overhead_0ms", b, required=False) for b in ("generated", "hand_written_join")}
if None not in ov.values():
    show("generated (16 fields, 0ms) / hand-written join!", ov["generated"], ov["hand_written_join"], 1.25)
    print(f"per-field cost: generated {ov['generated']/16:.0f} ns, hand-written {ov['hand_written_join']/16:.0f} ns")
ty = {b: mean_ns("typed_0ms", b, required=False) for b in ("generated", "hand_written_join_all")}
if None not in ty.values():
    show("typed fetchers (16 x ComponentFetcher<u32>, 0ms) / join_all", ty["generated"], ty["hand_written_join_all"], 2.0)
    print(f"per-field cost: generated {ty['generated']/16:.0f} ns, hand-written {ty['hand_written_join_all']/16:.0f} ns")

pr = {b: mean_ns("precedence_50ms", b, required=False) for b in ("fetch_16x3", "one_round_trip")}
if None not in pr.values():
    show("16 fields x 3 precedence sources (50ms) / one 50ms round trip", pr["fetch_16x3"], pr["one_round_trip"], 1.10)

dp = {b: mean_ns("dependent_50ms", b, required=False) for b in ("chain_2_plus_14", "two_round_trips")}
if None not in dp.values():
    show("chain of 2 + 14 fields (50ms each) / two 50ms round trips", dp["chain_2_plus_14"], dp["two_round_trips"], 1.10)

db = {b: mean_ns("postgres_64_fields", b, required=False) for b in ("coalesced_fetch_all", "one_query_per_field", "single_one_row_query")}
if None not in db.values():
    show("64 fields coalesced (1 query) / a single one-row query", db["coalesced_fetch_all"], db["single_one_row_query"], 1.5)
    show("64 fields coalesced (1 query) / one query per field (64)", db["coalesced_fetch_all"], db["one_query_per_field"])
    raw = mean_ns("postgres_64_fields", "raw_sqlx_same_64_row_query", required=False)
    if raw:
        show("raw sqlx, the same 64-row query / a single one-row query", raw, db["single_one_row_query"])
        show("64 fields coalesced / raw sqlx, the same 64-row query", db["coalesced_fetch_all"], raw, 1.05)
else:
    print("(no PostgreSQL benchmark results: run `cargo bench -p component_model_benches --bench database` with PostgreSQL up)")

rem = {b: mean_ns("consul_32_keys", b, required=False) for b in ("one_txn", "one_get_per_key")}
if None not in rem.values():
    show("32 consul keys: one /v1/txn / 32 GETs", rem["one_txn"], rem["one_get_per_key"])
va = {b: mean_ns("vault_8_fields_one_path", b, required=False) for b in ("one_read", "one_read_per_field")}
if None not in va.values():
    show("8 fields of one vault secret: one read / 8 reads", va["one_read"], va["one_read_per_field"])
lay = mean_ns("consul_32_keys", "layers_no_faults", required=False)
if lay and rem["one_txn"]:
    show("32 consul keys: timeout+retry+breaker+limit layers / none", lay, rem["one_txn"], 1.05)
ch = {b: mean_ns("cache_hit_16", b, required=False) for b in ("generated", "moka_gets")}
if None not in ch.values():
    show("16 cached fields: fetch_all_components / 16 moka gets + parse", ch["generated"], ch["moka_gets"], 2.0)
lg = {b: mean_ns("live_get", b, required=False) for b in ("live_get", "arc_swap_load")}
if None not in lg.values():
    print(f"{'Live::get / ArcSwap::load':<58} {lg['live_get']:9.2f} ns / {lg['arc_swap_load']:9.2f} ns = {lg['live_get']/lg['arc_swap_load']:6.3f}  (goal <= 1.5)")

for kind, goal in (("warm", 0.5), ("cold", 1.0), ("first", 1.0)):
    pe = {b: mean_ns(f"peers_{kind}", b, required=False) for b in ("ours", "ours_current_thread", "figment", "config_rs")}
    if None in (pe["ours"], pe["figment"], pe["config_rs"]):
        continue
    peer = min(("figment", "config_rs"), key=lambda b: pe[b])
    print(f"peers {kind}: ours {pe['ours']/1e3:.1f} us, figment {pe['figment']/1e3:.1f} us, config-rs {pe['config_rs']/1e3:.1f} us")
    show(f"peers {kind}: ours (multi-thread runtime) / {peer}", pe["ours"], pe[peer], goal)
    if pe["ours_current_thread"]:
        show(f"peers {kind}: ours (current-thread runtime) / {peer}", pe["ours_current_thread"], pe[peer], goal)
