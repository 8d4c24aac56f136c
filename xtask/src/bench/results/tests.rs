//! Unit tests of `results`.

use super::*;
use std::time::Duration;

fn write_estimate(dir: &Path, group: &str, function: &str, mean: f64) {
    let path = dir.join(group).join(function).join("new");
    fs::create_dir_all(&path).unwrap();
    let json = format!(r#"{{"mean":{{"point_estimate":{mean},"standard_error":1.0}}}}"#);
    fs::write(path.join("estimates.json"), json).unwrap();
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("xtask-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    dir
}

#[test]
fn reads_criterion_means_by_group_and_function_and_pairs_raw_with_authcache() {
    let dir = temp_dir("criterion");
    write_estimate(&dir, "redis_get_hit", "raw", 100.0);
    write_estimate(&dir, "redis_get_hit", "authcache", 110.0);
    write_estimate(&dir, "jwt_fingerprint", "authcache", 50.0);
    write_estimate(&dir, "auth_warm_hs256", "decode", 2_000.0);
    let since = SystemTime::now() - Duration::from_secs(60);
    let results = Results::load(&dir, &dir.join("none.jsonl"), since).unwrap();
    fs::remove_dir_all(&dir).unwrap();
    assert_eq!(results.raw_vs_authcache_groups(), ["redis_get_hit"]);
    let decode = results.measured("auth_warm_hs256/decode").unwrap();
    assert_eq!(
        (decode.value, decode.unit, decode.fresh),
        (2_000.0, Unit::Nanos, true)
    );
}

#[test]
fn criterion_results_older_than_the_run_are_not_fresh() {
    let dir = temp_dir("stale");
    write_estimate(&dir, "core_l1_hit", "raw", 100.0);
    let since = SystemTime::now() + Duration::from_secs(60);
    let results = Results::load(&dir, &dir.join("none.jsonl"), since).unwrap();
    fs::remove_dir_all(&dir).unwrap();
    assert!(!results.measured("core_l1_hit/raw").unwrap().fresh);
}

#[test]
fn figures_lines_give_values_units_and_reasons_and_later_lines_win() {
    let mut results = Results::default();
    results.load_figures(concat!(
        r#"{"id":"bytes/authcache","value":300.0,"unit":"B"}"#,
        "\n",
        r#"{"id":"bytes/authcache","value":280.0,"unit":"B"}"#,
        "\n",
        r#"{"id":"quickstart/redis","missing":"no binary"}"#,
        "\nnot json\n",
        r#"{"id":"odd","value":1.0,"unit":"furlongs"}"#,
    ));
    let bytes = results.measured("bytes/authcache").unwrap();
    assert_eq!((bytes.value, bytes.unit), (280.0, Unit::Bytes));
    assert_eq!(
        results.get("quickstart/redis"),
        Some(&Outcome::Missing("no binary".into()))
    );
    assert_eq!(results.get("odd"), None);
}
