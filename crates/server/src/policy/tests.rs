//! Requirements from the proxy, rule matching (paths, hosts, methods) and verdicts.

use super::*;

fn rule(path: &str) -> Rule {
    Rule {
        host: None,
        methods: Vec::new(),
        path: Some(path.to_owned()),
        anonymous: false,
        requirement: Requirement::default(),
    }
}

fn requiring(roles: &[&str]) -> Requirement {
    Requirement {
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        ..Requirement::default()
    }
}

#[test]
fn a_pattern_without_a_star_is_a_prefix() {
    assert!(path_matches("/api/", "/api/users"));
    assert!(
        path_matches("/api", "/apiary"),
        "a prefix is a prefix: write `/api/` for the folder"
    );
    assert!(!path_matches("/api/", "/ap"));
}

#[test]
fn a_star_stays_in_its_segment_and_two_stars_cross_segments() {
    assert!(path_matches("/users/*", "/users/42"));
    assert!(!path_matches("/users/*", "/users/42/roles"));
    assert!(path_matches("/users/*/roles", "/users/42/roles"));
    assert!(path_matches("/files/*.pdf", "/files/report.pdf"));
    assert!(!path_matches("/files/*.pdf", "/files/report.pdf.exe"));
    assert!(path_matches("/api/**", "/api"));
    assert!(path_matches("/api/**", "/api/a/b/c"));
    assert!(path_matches("/api/**/edit", "/api/a/b/edit"));
    assert!(path_matches("/api/**/edit", "/api/edit"));
    assert!(!path_matches("/api/**/edit", "/api/a/b/view"));
    assert!(path_matches("/a*b*c", "/aXbYc"));
    assert!(!path_matches("/a*b*c", "/aXbY"));
}

#[test]
fn a_hostile_path_is_matched_in_linear_time() {
    // Without one backtrack point per `**`, this would be exponential.
    let path = format!("/{}", "a/".repeat(2_000));
    assert!(!path_matches("/**/a/**/a/**/a/**/b", &path));
}

#[test]
fn hosts_match_exactly_or_by_subdomain_without_port_or_case() {
    assert!(host_matches("api.example.com", "API.example.com:8443"));
    assert!(host_matches("*.example.com", "a.b.example.com"));
    assert!(!host_matches("*.example.com", "example.com"));
    assert!(!host_matches("*.example.com", "badexample.com"));
    assert!(host_matches("::1", "[::1]:80"));
}

#[test]
fn the_first_matching_rule_wins_and_the_default_takes_the_rest() {
    let policy = Policy {
        default: Default::Deny,
        rules: vec![
            Rule {
                anonymous: true,
                ..rule("/public/")
            },
            Rule {
                methods: vec!["post".into()],
                requirement: requiring(&["admin"]),
                ..rule("/api/**")
            },
            rule("/api/"),
        ],
    };
    assert_eq!(policy.validate(), Ok(()));
    assert_eq!(
        policy.verdict(None, "GET", "/public/logo.png"),
        Verdict::Anonymous
    );
    assert_eq!(
        policy.verdict(None, "POST", "/api/users?x=1"),
        Verdict::Require(requiring(&["admin"]))
    );
    assert_eq!(
        policy.verdict(None, "GET", "/api/users"),
        Verdict::Require(Requirement::default())
    );
    assert_eq!(policy.verdict(None, "GET", "/other"), Verdict::Deny);
    assert_eq!(
        Policy::default().verdict(None, "GET", "/x"),
        Verdict::Require(Requirement::default()),
        "without rules, any valid token"
    );
}

#[test]
fn a_rule_with_a_host_never_matches_a_request_without_one() {
    let policy = Policy {
        default: Default::Deny,
        rules: vec![Rule {
            host: Some("api.example.com".into()),
            ..rule("/")
        }],
    };
    assert_eq!(policy.verdict(None, "GET", "/"), Verdict::Deny);
    assert_eq!(
        policy.verdict(Some("api.example.com"), "GET", "/"),
        Verdict::Require(Requirement::default())
    );
}

#[test]
fn rules_that_cannot_work_are_refused_at_start_up() {
    for (bad, says) in [
        (rule("api/"), "must start with `/`"),
        (
            Rule {
                host: Some("a.*.com".into()),
                ..rule("/")
            },
            "host",
        ),
        (
            Rule {
                methods: vec!["GET POST".into()],
                ..rule("/")
            },
            "not an HTTP method",
        ),
        (
            Rule {
                anonymous: true,
                requirement: requiring(&["admin"]),
                ..rule("/")
            },
            "one or the other",
        ),
    ] {
        let policy = Policy {
            default: Default::Authenticated,
            rules: vec![rule("/ok/"), bad],
        };
        let error = policy.validate().unwrap_err();
        assert_eq!(error.index, 2);
        assert!(error.to_string().contains(says), "{error}");
    }
}

#[test]
fn the_proxys_parameters_give_the_requirement() {
    let pairs = [
        ("role", "admin, editor"),
        ("permission", "x"),
        ("role", "ops"),
        ("match", "all"),
    ];
    assert_eq!(
        Requirement::from_pairs(pairs),
        Ok(Some(Requirement {
            roles: vec!["admin".into(), "editor".into(), "ops".into()],
            permissions: vec!["x".into()],
            mode: Match::All,
        }))
    );
    assert_eq!(
        Requirement::from_pairs(Vec::<(&str, &str)>::new()),
        Ok(None)
    );
    assert_eq!(
        Requirement::from_pairs([("rol", "admin")]),
        Err(PolicyError::Unknown("rol".into())),
        "a typo must not let everyone through"
    );
    assert_eq!(
        Requirement::from_pairs([("match", "most")]),
        Err(PolicyError::BadMatch("most".into()))
    );
    for empty in [
        vec![("role", "")],
        vec![("permission", " , ")],
        vec![("match", "all")],
    ] {
        assert!(
            matches!(
                Requirement::from_pairs(empty.clone()),
                Err(PolicyError::Empty(_))
            ),
            "{empty:?} would let every valid token through"
        );
    }
}

#[test]
fn policy_reads_from_toml() {
    let policy: Policy = toml::from_str(
        r#"
        default = "deny"
        [[rules]]
        host = "*.example.com"
        methods = ["POST"]
        path = "/api/users/*"
        permissions = ["users:write"]
        match = "all"
        [[rules]]
        path = "/public/**"
        anonymous = true
        "#,
    )
    .unwrap();
    assert_eq!(policy.default, Default::Deny);
    assert_eq!(policy.rules[0].requirement.permissions, ["users:write"]);
    assert_eq!(policy.rules[0].requirement.mode, Match::All);
    assert!(policy.rules[1].anonymous);
    let typo = toml::from_str::<Policy>("[[rules]]\npath = \"/\"\nrole = [\"admin\"]\n");
    assert!(typo.is_err(), "an unknown key in a rule is an error");
}
