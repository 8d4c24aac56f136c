//! Unit tests of `memory`.

use super::*;

#[test]
fn rss_growth_is_measured_from_the_end_of_the_warm_up() {
    let sample = |at: u64, rss: u64| Sample {
        at: Duration::from_secs(at),
        rss_kib: Some(rss),
        authentications: at * 10,
    };
    let samples = [
        sample(0, 50),
        sample(5, 100),
        sample(6, 101),
        sample(7, 120),
        sample(8, 103),
        sample(10, 104),
    ];
    let seconds = |s: u64| Some(Duration::from_secs(s));
    let memory = Memory::of(&samples, Duration::from_secs(5), seconds(7), seconds(8)).unwrap();
    assert_eq!(
        (memory.at_warm_up_kib, memory.at_end_kib, memory.peak_kib),
        (100, 104, 120)
    );
    assert!((memory.growth_percent() - 4.0).abs() < 1e-9);
    // 101 before the kill, 103 once Redis is used again.
    let parts = memory.growth_parts().unwrap();
    for (part, expected) in parts.into_iter().zip([1.0, 2.0, 1.0]) {
        assert!((part - expected).abs() < 1e-9, "{parts:?}");
    }
    assert!(memory.within_limits());
    // A step across the restart is bounded on its own; growth outside it is the leak signal.
    let judged = |rss: [u64; 4]| {
        let samples = [
            sample(5, rss[0]),
            sample(6, rss[1]),
            sample(8, rss[2]),
            sample(10, rss[3]),
        ];
        Memory::of(&samples, Duration::from_secs(5), seconds(7), seconds(8))
            .unwrap()
            .within_limits()
    };
    assert!(
        judged([100, 101, 111, 112]),
        "a 10 % step across the restart"
    );
    assert!(
        !judged([100, 101, 117, 118]),
        "a 16 % step across the restart"
    );
    assert!(!judged([100, 104, 105, 107]), "6 % outside the restart");
    // A kill inside the warm-up leaves nothing to split.
    let early = Memory::of(&samples, Duration::from_secs(5), seconds(2), seconds(8)).unwrap();
    assert_eq!(early.growth_parts(), None);
    assert_eq!(per_second(&samples), vec![50, 10, 10, 10, 20]);
    assert_eq!(
        parse_vm_rss("Name:\tsoak\nVmRSS:\t  123456 kB\n"),
        Some(123_456)
    );
    assert_eq!(parse_vm_rss("Name:\tsoak\n"), None);
}
