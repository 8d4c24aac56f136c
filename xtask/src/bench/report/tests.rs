//! Unit tests of `report`.

use super::*;

/// The figures file `lines`, loaded; each call writes a file of its own, since tests
/// run in parallel.
fn results(lines: &str) -> Results {
    static FILES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = FILES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("xtask-report-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let figures = dir.join(format!("{n}.jsonl"));
    std::fs::write(&figures, lines).unwrap();
    let loaded = Results::load(&dir.join("none"), &figures, std::time::SystemTime::now());
    std::fs::remove_file(&figures).unwrap();
    loaded.unwrap()
}

#[test]
fn a_row_shows_both_values_their_ratio_and_whether_the_target_is_met() {
    let results = results(concat!(
        r#"{"id":"l2/authcache","value":95000.0,"unit":"ops/s"}"#,
        "\n",
        r#"{"id":"l2/reference","value":100000.0,"unit":"ops/s"}"#,
    ));
    let row = Row {
        figure: "L2 throughput",
        ours: "l2/authcache",
        reference: Some("l2/reference"),
        target: Target::RatioAtLeast(0.9),
    };
    assert_eq!(
        line(&results, &row),
        "| L2 throughput | 95.0 k/s | 100.0 k/s | 0.95× | ≥ 0.9× | yes |"
    );
    let stricter = Row {
        target: Target::RatioAtLeast(1.0),
        ..row
    };
    assert!(line(&results, &stricter).ends_with("| ≥ 1× | **no** |"));
}

#[test]
fn a_row_without_its_figures_says_why() {
    let results = results(r#"{"id":"quickstart/redis","missing":"no binary"}"#);
    let row = Row {
        figure: "quickstart",
        ours: "quickstart/redis",
        reference: None,
        target: Target::None,
    };
    assert_eq!(
        line(&results, &row),
        "| quickstart | not measured: no binary | — | — | — | — |"
    );
    let absent = Row {
        ours: "nothing/here",
        ..row
    };
    assert!(line(&results, &absent).contains("not measured in this run"));
}

#[test]
fn counts_are_checked_against_their_own_bound() {
    let results = results(concat!(
        r#"{"id":"cold/authcache","value":1.0,"unit":"count"}"#,
        "\n",
        r#"{"id":"cold/hand_rolled","value":1000.0,"unit":"count"}"#,
    ));
    let row = Row {
        figure: "loads",
        ours: "cold/authcache",
        reference: Some("cold/hand_rolled"),
        target: Target::AtMost(1.0),
    };
    assert_eq!(
        line(&results, &row),
        "| loads | 1 | 1000 | 0.00× | ≤ 1 | yes |"
    );
}

#[test]
fn human_units() {
    assert_eq!(human_time(12.34), "12.3 ns");
    assert_eq!(human_time(1_500.0), "1.50 µs");
    assert_eq!(human_time(2_500_000.0), "2.50 ms");
    assert_eq!(human_rate(950.0), "950 /s");
    assert_eq!(human_rate(123_400.0), "123.4 k/s");
    assert_eq!(human_rate(2_500_000.0), "2.50 M/s");
}
