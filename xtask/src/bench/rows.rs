//! The rows of the report (issue 12, item 4; the proxy rows, issue 22, item 6): what each figure compares, by id, and the
//! target it must meet. Ids are criterion's `<group>/<function>` or the `figures` bench's.

/// What a row must show to be met.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Target {
    /// No target: the row is reported for what it shows.
    None,
    /// ours / reference at most this (times, sizes).
    RatioAtMost(f64),
    /// ours / reference at least this (throughput).
    RatioAtLeast(f64),
    /// ours itself at most this (counts).
    AtMost(f64),
}

/// One row: a figure of ours and, measured in the same run, its reference.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Row<'a> {
    pub(crate) figure: &'a str,
    pub(crate) ours: &'a str,
    pub(crate) reference: Option<&'a str>,
    pub(crate) target: Target,
}

const fn row(
    figure: &'static str,
    ours: &'static str,
    reference: &'static str,
    target: Target,
) -> Row<'static> {
    Row {
        figure,
        ours,
        reference: Some(reference),
        target,
    }
}

const fn alone(figure: &'static str, ours: &'static str) -> Row<'static> {
    Row {
        figure,
        ours,
        reference: None,
        target: Target::None,
    }
}

/// `{entry_bytes}` in a figure's text is replaced by the measured size of the L2 entry.
pub(crate) const ENTRY_BYTES: (&str, &str) =
    ("{entry_bytes}", "l2_throughput_64_tasks/entry_bytes");

/// The table, in the order it is printed.
pub(crate) const ROWS: &[Row<'static>] = &[
    // Item 3 of issue 23: the reference is the map `MemoryL1` wraps, so the ratio is our
    // layer's cost over it. The moka row stays for the pattern it replaced, with its target:
    // it is what made quick_cache worth the switch, and a regression there would show.
    row(
        "L1 hit vs bare `quick_cache` `get` of the same `Arc`",
        "core_l1_hit/authcache",
        "core_l1_hit/raw",
        Target::RatioAtMost(1.2),
    ),
    row(
        "L1 hit vs bare moka `get` (the replaced pattern)",
        "core_l1_hit/authcache",
        "core_l1_hit/moka",
        Target::RatioAtMost(1.0),
    ),
    row(
        "warm `authenticate` vs bare `jsonwebtoken::decode`, HS256",
        "auth_warm_hs256/authcache",
        "auth_warm_hs256/decode",
        Target::RatioAtMost(0.25),
    ),
    row(
        "warm `authenticate` vs bare `decode`, RS256",
        "auth_warm_rs256/authcache",
        "auth_warm_rs256/decode",
        Target::None,
    ),
    row(
        "warm `authenticate` vs bare `decode`, ES256",
        "auth_warm_es256/authcache",
        "auth_warm_es256/decode",
        Target::None,
    ),
    row(
        "warm `authenticate` vs hand-rolled (decode + Redis `GET` + JSON), HS256",
        "auth_warm_hs256/authcache",
        "auth_warm_hs256/hand_rolled",
        Target::None,
    ),
    row(
        "warm `authenticate` vs hand-rolled, RS256",
        "auth_warm_rs256/authcache",
        "auth_warm_rs256/hand_rolled",
        Target::None,
    ),
    row(
        "warm `authenticate` vs hand-rolled, ES256",
        "auth_warm_es256/authcache",
        "auth_warm_es256/hand_rolled",
        Target::None,
    ),
    row(
        "warm `authenticate` throughput, HS256, 1 task, vs bare `decode`",
        "authenticate_hs256_tasks_1/authcache",
        "authenticate_hs256_tasks_1/decode",
        Target::None,
    ),
    row(
        "… 2 tasks",
        "authenticate_hs256_tasks_2/authcache",
        "authenticate_hs256_tasks_2/decode",
        Target::None,
    ),
    row(
        "… 4 tasks",
        "authenticate_hs256_tasks_4/authcache",
        "authenticate_hs256_tasks_4/decode",
        Target::None,
    ),
    row(
        "… 8 tasks",
        "authenticate_hs256_tasks_8/authcache",
        "authenticate_hs256_tasks_8/decode",
        Target::None,
    ),
    row(
        "L2-only hit (L1 off) vs redis-rs `GET` of the same entry",
        "auth_l2_hit/authcache",
        "auth_l2_hit/raw",
        Target::None,
    ),
    row(
        "L2 throughput, 64 tasks (one user each), vs raw redis-rs `GET` of the same entries, 64 \
         tasks on one `ConnectionManager`",
        "l2_throughput_64_tasks/authcache",
        "l2_throughput_64_tasks/redis_rs",
        Target::RatioAtLeast(0.9),
    ),
    // Not a target: the raw reference plus the envelope's HMAC check and the user's decode,
    // which any signed, typed cache pays. The ratio is the tier's own bookkeeping.
    row(
        "… vs raw redis-rs `GET` + the envelope's HMAC check + decode of the same entries",
        "l2_throughput_64_tasks/authcache",
        "l2_throughput_64_tasks/redis_rs_decoded",
        Target::None,
    ),
    row(
        "… vs `redis-benchmark -c 64 -t get -d {entry_bytes}`",
        "l2_throughput_64_tasks/authcache",
        "l2_throughput_64_tasks/redis_benchmark",
        Target::None,
    ),
    row(
        "… vs `redis-benchmark -c 64 -P 16 -t get -d {entry_bytes}` (pipelined)",
        "l2_throughput_64_tasks/authcache",
        "l2_throughput_64_tasks/redis_benchmark_p16",
        Target::None,
    ),
    row(
        "miss path (L1 + L2 miss → MongoDB → fill) vs the replaced system's: Redis `GET` (miss) + driver `find_one` + Redis `SET EX`",
        "auth_miss_path/authcache",
        "auth_miss_path/raw",
        Target::RatioAtMost(1.1),
    ),
    row(
        "bytes per user entry (20-field document, signed) vs `serde_json`",
        "user_entry_bytes/authcache",
        "user_entry_bytes/serde_json",
        Target::None,
    ),
    row(
        "bytes per user entry vs pickle+base64 (the replaced system: 740 B)",
        "user_entry_bytes/authcache",
        "user_entry_bytes/pickle_base64",
        Target::RatioAtMost(0.4),
    ),
    // What those bytes are, and what the shrinkings and codecs of issue 23, item 4 would
    // save: the `figures` bench's `bytes` section and the `codec` bench.
    alone(
        "… of which the header (magic, version, codec, flags)",
        "user_entry_part/header",
    ),
    alone(
        "… the expiry (Unix ms, bincode varint)",
        "user_entry_part/expiry",
    ),
    alone("… the `Option` tag", "user_entry_part/option_tag"),
    alone("… the document (bincode 2)", "user_entry_part/document"),
    alone("… the HMAC-SHA256 tag", "user_entry_part/tag"),
    row(
        "bytes per user entry with the expiry as varint seconds since a deployment epoch, vs today",
        "user_entry_bytes/varint_expiry",
        "user_entry_bytes/authcache",
        Target::None,
    ),
    row(
        "… as Unix seconds (no epoch), vs today",
        "user_entry_bytes/unix_seconds_expiry",
        "user_entry_bytes/authcache",
        Target::None,
    ),
    row(
        "… with a 1-byte header, vs today",
        "user_entry_bytes/short_header",
        "user_entry_bytes/authcache",
        Target::None,
    ),
    row(
        "small user entry (`User`, 1 role) with the expiry as varint seconds, vs today",
        "small_user_entry_bytes/varint_expiry",
        "small_user_entry_bytes/authcache",
        Target::None,
    ),
    row(
        "… with a 1-byte header, vs today",
        "small_user_entry_bytes/short_header",
        "small_user_entry_bytes/authcache",
        Target::None,
    ),
    row(
        "bytes per user entry (20 fields, signed), postcard vs bincode 2 (the default)",
        "codec_entry_bytes/postcard",
        "codec_entry_bytes/bincode",
        Target::None,
    ),
    row(
        "… small user",
        "codec_small_entry_bytes/postcard",
        "codec_small_entry_bytes/bincode",
        Target::None,
    ),
    row(
        "envelope encode (signed), 20 fields, postcard vs bincode 2",
        "codec_encode/postcard",
        "codec_encode/bincode",
        Target::None,
    ),
    row(
        "envelope verify + decode, 20 fields, postcard vs bincode 2",
        "codec_decode/postcard",
        "codec_decode/bincode",
        Target::None,
    ),
    row(
        "RSS per L1 entry, 100,000 users cached, vs bare moka `Cache<String, Arc<User>>`",
        "l1_rss_per_entry/authcache",
        "l1_rss_per_entry/moka",
        Target::None,
    ),
    row(
        "repository loads for 1,000 concurrent cold requests vs hand-rolled",
        "cold_1000_requests_loads/authcache",
        "cold_1000_requests_loads/hand_rolled",
        Target::AtMost(1.0),
    ),
    alone(
        "quickstart end to end (release), memory cache + memory users",
        "quickstart_throughput/memory",
    ),
    alone(
        "quickstart end to end (release), Redis + memory users",
        "quickstart_throughput/redis",
    ),
    alone(
        "quickstart end to end (release), Redis + MongoDB-compatible server",
        "quickstart_throughput/redis_mongodb",
    ),
    // The sidecar behind nginx (issue 22, item 6): wrk, 64 connections, one valid token.
    // nginx (1 worker), the sidecar, the upstream and wrk share the same cores.
    alone(
        "proxy, 64 connections (wrk): nginx → upstream, no auth (the limit), req/s",
        "proxy_rps/nginx_direct",
    ),
    alone("… p50", "proxy_p50/nginx_direct"),
    alone("… p99", "proxy_p99/nginx_direct"),
    row(
        "proxy: nginx `auth_request` → authcache-server → upstream vs no auth, req/s \
         (nginx, sidecar, upstream and wrk on the same cores)",
        "proxy_rps/nginx_auth_request",
        "proxy_rps/nginx_direct",
        Target::RatioAtLeast(0.5),
    ),
    row(
        "… p50",
        "proxy_p50/nginx_auth_request",
        "proxy_p50/nginx_direct",
        Target::None,
    ),
    row(
        "… p99",
        "proxy_p99/nginx_auth_request",
        "proxy_p99/nginx_direct",
        Target::None,
    ),
    alone(
        "authcache-server `/auth` alone, 64 connections (wrk), req/s",
        "proxy_rps/auth_alone",
    ),
    alone("… p50", "proxy_p50/auth_alone"),
    alone("… p99", "proxy_p99/auth_alone"),
    row(
        "p99 of hot users across TTL boundaries, refresh-ahead 0.1 vs off",
        "ttl_boundary_p99/refresh_ahead",
        "ttl_boundary_p99/no_refresh_ahead",
        Target::None,
    ),
    row(
        "p99.9 of the same",
        "ttl_boundary_p999/refresh_ahead",
        "ttl_boundary_p999/no_refresh_ahead",
        Target::None,
    ),
    // Cost as the work grows (issue 23, item 2): the quickstart's workload — warm HS256
    // `authenticate` from 64 tasks, users drawn Zipf s = 1.1 (seed 23), memory repository,
    // Redis L2, default L1 capacity (50,000) — at 10 k, 100 k and 1 M users (`--quick` stops
    // at 100 k). A larger size is compared with 10 k, more instances with one.
    alone(
        "growth: warm `authenticate`, Zipf s = 1.1, 64 tasks, Redis L2, 10,000 users, 1 instance",
        "growth_throughput/users_10k",
    ),
    alone("… p99", "growth_p99/users_10k"),
    alone(
        "… RSS of the process (repository and tokens included)",
        "growth_rss/users_10k",
    ),
    alone(
        "… RSS growth per cached principal",
        "growth_rss_per_principal/users_10k",
    ),
    alone("… Redis CPU, % of one core", "growth_redis_cpu/users_10k"),
    row(
        "… 2 instances on the one Redis, total throughput vs 1 instance",
        "growth_throughput/users_10k_2_instances",
        "growth_throughput/users_10k",
        Target::None,
    ),
    alone(
        "… Redis CPU, % of one core, 2 instances",
        "growth_redis_cpu/users_10k_2_instances",
    ),
    row(
        "… 4 instances on the one Redis, total throughput vs 1 instance",
        "growth_throughput/users_10k_4_instances",
        "growth_throughput/users_10k",
        Target::None,
    ),
    alone(
        "… Redis CPU, % of one core, 4 instances",
        "growth_redis_cpu/users_10k_4_instances",
    ),
    row(
        "growth: the same, 100,000 users, 1 instance, vs 10,000 users",
        "growth_throughput/users_100k",
        "growth_throughput/users_10k",
        Target::None,
    ),
    row(
        "… p99 vs 10,000 users",
        "growth_p99/users_100k",
        "growth_p99/users_10k",
        Target::None,
    ),
    row(
        "… RSS of the process vs 10,000 users",
        "growth_rss/users_100k",
        "growth_rss/users_10k",
        Target::None,
    ),
    row(
        "… RSS growth per cached principal vs 10,000 users",
        "growth_rss_per_principal/users_100k",
        "growth_rss_per_principal/users_10k",
        Target::None,
    ),
    alone("… Redis CPU, % of one core", "growth_redis_cpu/users_100k"),
    row(
        "… 2 instances on the one Redis, total throughput vs 1 instance",
        "growth_throughput/users_100k_2_instances",
        "growth_throughput/users_100k",
        Target::None,
    ),
    alone(
        "… Redis CPU, % of one core, 2 instances",
        "growth_redis_cpu/users_100k_2_instances",
    ),
    row(
        "… 4 instances on the one Redis, total throughput vs 1 instance",
        "growth_throughput/users_100k_4_instances",
        "growth_throughput/users_100k",
        Target::None,
    ),
    alone(
        "… Redis CPU, % of one core, 4 instances",
        "growth_redis_cpu/users_100k_4_instances",
    ),
    row(
        "growth: the same, 1,000,000 users, 1 instance, vs 10,000 users",
        "growth_throughput/users_1m",
        "growth_throughput/users_10k",
        Target::None,
    ),
    row(
        "… p99 vs 10,000 users",
        "growth_p99/users_1m",
        "growth_p99/users_10k",
        Target::None,
    ),
    row(
        "… RSS of the process vs 10,000 users",
        "growth_rss/users_1m",
        "growth_rss/users_10k",
        Target::None,
    ),
    row(
        "… RSS growth per cached principal vs 10,000 users",
        "growth_rss_per_principal/users_1m",
        "growth_rss_per_principal/users_10k",
        Target::None,
    ),
    alone("… Redis CPU, % of one core", "growth_redis_cpu/users_1m"),
    row(
        "… 2 instances on the one Redis, total throughput vs 1 instance",
        "growth_throughput/users_1m_2_instances",
        "growth_throughput/users_1m",
        Target::None,
    ),
    alone(
        "… Redis CPU, % of one core, 2 instances",
        "growth_redis_cpu/users_1m_2_instances",
    ),
    row(
        "… 4 instances on the one Redis, total throughput vs 1 instance",
        "growth_throughput/users_1m_4_instances",
        "growth_throughput/users_1m",
        Target::None,
    ),
    alone(
        "… Redis CPU, % of one core, 4 instances",
        "growth_redis_cpu/users_1m_4_instances",
    ),
    // Propagation across 3 instances (issue 23, item 3): from the call returning on one
    // instance until every other one answers the change; histograms below the table.
    alone(
        "propagation, 3 instances, one Redis: `logout` → every other instance refuses the token, p50",
        "propagation_logout_redis/p50",
    ),
    alone("… p99", "propagation_logout_redis/p99"),
    alone("… p99.9", "propagation_logout_redis/p999"),
    alone("… max", "propagation_logout_redis/max"),
    alone(
        "… the same on the 3-master Cluster, p50",
        "propagation_logout_cluster/p50",
    ),
    alone("… p99", "propagation_logout_cluster/p99"),
    alone("… p99.9", "propagation_logout_cluster/p999"),
    alone("… max", "propagation_logout_cluster/max"),
    alone(
        "propagation, one Redis: role removed + `invalidate_user` → every other instance drops the permission, p50",
        "propagation_invalidate_redis/p50",
    ),
    alone("… p99", "propagation_invalidate_redis/p99"),
    alone("… p99.9", "propagation_invalidate_redis/p999"),
    alone("… max", "propagation_invalidate_redis/max"),
    alone(
        "… the same on the 3-master Cluster, p50",
        "propagation_invalidate_cluster/p50",
    ),
    alone("… p99", "propagation_invalidate_cluster/p99"),
    alone("… p99.9", "propagation_invalidate_cluster/p999"),
    alone("… max", "propagation_invalidate_cluster/max"),
];

/// The distributions the report draws as histograms under the table (issue 23, item 3):
/// title, and the group of their buckets — `<group>/<k>` counts the samples that took
/// [2^k, 2^(k+1)) µs (the `figures` bench's `propagation` section writes them).
pub(crate) const HISTOGRAMS: &[(&str, &str)] = &[
    ("`logout`, one Redis", "propagation_logout_redis_histogram"),
    (
        "`logout`, 3-master Cluster",
        "propagation_logout_cluster_histogram",
    ),
    (
        "role removed + `invalidate_user`, one Redis",
        "propagation_invalidate_redis_histogram",
    ),
    (
        "role removed + `invalidate_user`, 3-master Cluster",
        "propagation_invalidate_cluster_histogram",
    ),
];

/// Targets of the other raw-vs-authcache groups (ours / raw), by group-name prefix.
pub(crate) const GROUP_TARGETS: &[(&str, f64)] = &[
    ("redis_", 1.2),
    ("jwt_", 1.1),
    ("users_", 1.1),
    ("core_", 1.5),
];

#[cfg(test)]
mod tests;
