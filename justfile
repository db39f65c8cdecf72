# ticketd developer recipes. `just --list` shows them.

# Everything on embedded defaults: throwaway PostgreSQL, InvGate simulator, ticketd on :8080.
demo *ARGS:
    cargo run -p ticketd -- demo {{ARGS}}

# Run every test (starts a throwaway PostgreSQL unless DATABASE_URL is set).
test:
    cargo test --workspace

# Lints as CI runs them.
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings

# Format the code.
fmt:
    cargo fmt --all

# Serve with the configuration in the environment (see README "Configuration").
run *ARGS:
    cargo run -p ticketd -- serve {{ARGS}}

# Apply pending migrations to $DATABASE_URL.
migrate:
    cargo run -p ticketd -- migrate

# The InvGate simulator on its own.
sim *ARGS:
    cargo run -p ticketd-invgate-sim -- {{ARGS}}

# Thousands of creates under random faults and a database outage; figures in target/soak/results.json.
soak requests="3000" concurrency="32":
    TICKETD_SOAK_REQUESTS={{requests}} TICKETD_SOAK_CONCURRENCY={{concurrency}} cargo test -p ticketd --test soak -- --nocapture

# Fuzz one target (bind_json, bind_multipart, invgate_answers) for SECS seconds; installs cargo-fuzz if missing.
fuzz target="bind_json" secs="600":
    command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
    mkdir -p fuzz/corpus/{{target}}
    cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run -O {{target}} corpus/{{target}} seeds/{{target}} -- -max_total_time={{secs}} -rss_limit_mb=4096

# BENCH_SECS (10), BENCH_WARMUP_SECS (2), BENCH_PAIRS (5), BENCH_CONCURRENCY (1,16,64),
# BENCH_BIG_RUNS (3), BENCH_SCENARIOS and DATABASE_URL are honoured; see docs/performance.md.
# Release builds, then every load scenario against ticketd and the floor; figures in target/bench/results.json.
bench:
    cargo build --release -p ticketd -p ticketd-invgate-sim -p ticketd-bench
    target/release/ticketd-bench

# Chromium is installed if missing (as root); every host but loopback is made unresolvable.
# Open /docs in headless Chromium, check every operation renders offline, write docs/api-docs.png.
docs-check screenshot="docs/api-docs.png":
    bash scripts/docs-check.sh {{screenshot}}

# The whole CI, as it runs on a clean clone.
ci:
    bash .ci/run
