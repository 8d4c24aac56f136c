//! Unit tests of `soak`.

use super::*;

#[test]
fn seconds_default_to_a_minute_and_must_be_positive() {
    assert_eq!(Soak::parse(&[]).unwrap(), Soak::default());
    assert_eq!(Soak::parse(&[]).unwrap().seconds, 60);
    assert_eq!(Soak::parse(&["--seconds", "15"]).unwrap().seconds, 15);
    assert!(Soak::parse(&["--seconds", "0"]).is_err());
    assert!(Soak::parse(&["--seconds", "x"]).is_err());
    assert!(Soak::parse(&["--seconds"]).is_err());
    assert!(Soak::parse(&["15"]).is_err());
}

#[test]
fn the_seed_is_fresh_unless_given_and_repeat_counts_runs() {
    assert_eq!(Soak::parse(&[]).unwrap().seed, None);
    assert_eq!(Soak::parse(&[]).unwrap().repeat, 1);
    assert_eq!(
        Soak::parse(&["--repeat", "3", "--seed", "42", "--seconds", "6"]).unwrap(),
        Soak {
            seconds: 6,
            seed: Some(42),
            repeat: 3
        }
    );
    assert_eq!(
        Soak::parse(&["--seed", "0"]).unwrap().seed,
        Some(0),
        "0 is a seed like any other"
    );
    assert!(Soak::parse(&["--seed", "-1"]).is_err());
    assert!(Soak::parse(&["--seed", "18446744073709551616"]).is_err());
    assert!(Soak::parse(&["--repeat", "0"]).is_err());
    assert!(Soak::parse(&["--repeat"]).is_err());
    assert_ne!(fresh_seed(), fresh_seed());
}

#[test]
fn ci_runs_one_soak_of_its_length_with_a_fresh_seed() {
    assert_eq!(
        Soak::ci(),
        Soak {
            seconds: CI_SECONDS,
            seed: None,
            repeat: 1
        }
    );
    assert_eq!(
        Soak::ci().replay(42),
        "cargo xtask soak --seconds 15 --seed 42"
    );
}

#[test]
fn the_soak_executable_is_found_among_cargos_messages() {
    let messages = [
        r#"{"reason":"compiler-artifact","target":{"name":"soak","kind":["bin"]},"profile":{"test":true},"executable":"/t/debug/deps/soak-1"}"#,
        r#"{"reason":"compiler-artifact","target":{"name":"soak","kind":["bin"]},"profile":{"test":false},"executable":"/t/debug/soak"}"#,
        r#"{"reason":"compiler-artifact","target":{"name":"soak","kind":["bin"]},"profile":{"test":false},"executable":null}"#,
        r#"{"reason":"compiler-artifact","target":{"name":"coherence","kind":["test"]},"executable":"/t/debug/deps/coherence-1"}"#,
        "not json",
    ];
    assert_eq!(
        soak_executable(&messages.join("\n")),
        Some(PathBuf::from("/t/debug/soak"))
    );
    assert_eq!(soak_executable(&messages[2..].join("\n")), None);
}
