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
    row(
        "L1 hit vs bare moka `get`",
        "core_l1_hit/authcache",
        "core_l1_hit/raw",
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
        "L2 throughput, 64 tasks, vs `redis-benchmark -c 64 -t get -d {entry_bytes}`",
        "l2_throughput_64_tasks/authcache",
        "l2_throughput_64_tasks/redis_benchmark",
        Target::RatioAtLeast(0.9),
    ),
    row(
        "miss path (L1 + L2 miss → MongoDB → fill) vs driver `find_one` + Redis `SET`",
        "auth_miss_path/authcache",
        "auth_miss_path/raw",
        Target::RatioAtMost(1.3),
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
