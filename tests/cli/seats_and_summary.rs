//! `roster check` counts licence seats offline; plan summaries count the
//! roles new accounts are created with (SPEC §9).

use super::*;

/// Three partners in one group under a role catalog of its own; `policy`
/// lines are appended (the policy block starts on line 22).
fn catalog_roster(policy: &str) -> String {
    let mut s = String::from("version: 1\ngroups:\n  - name: North Team\n    members:\n");
    s.push_str("      - email: ann@example.org\n        user_manager: true\n");
    s.push_str("      - bo@example.org\n      - cy@example.org\npartners:\n");
    for (email, first, roles) in [
        ("ann@example.org", "Ann", "[public-viewer, caseworker]"),
        ("bo@example.org", "Bo", "[caseworker]"),
        ("cy@example.org", "Cy", "[caseworker, supervisor]"),
    ] {
        s.push_str(&format!(
            "  - email: {email}\n    first_name: {first}\n    last_name: Lee\n    roles: {roles}\n"
        ));
    }
    s.push_str("policy:\n  required_fields: []\n");
    s.push_str("  roles: [public-viewer, caseworker, supervisor]\n");
    s.push_str(policy);
    s
}

#[test]
fn check_reports_more_active_partners_than_seats() {
    let text = catalog_roster("  max_active_accounts: 2\n");
    assert_eq!(text.lines().nth(24), Some("  max_active_accounts: 2"));
    let (code, found) = roster()
        .file("r.yaml", &text)
        .args(&["check", "r.yaml"])
        .findings();
    assert_eq!(code, 1);
    assert_eq!(
        found,
        [(
            "seats-exceeded".to_string(),
            "r.yaml".to_string(),
            25,
            3,
            "this roster names 3 active partners, more than max_active_accounts allows (2)"
                .to_string()
        )]
    );
    let out = roster()
        .file("r.yaml", &text)
        .args(&["check", "r.yaml"])
        .run();
    assert_eq!(out.code, 1);
    assert!(out.stdout.contains("r.yaml:25:3"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("raise `max_active_accounts` when the licence grows"),
        "{}",
        out.stdout
    );
    // Enough seats, or one partner set inactive: clean.
    for text in [
        catalog_roster("  max_active_accounts: 3\n"),
        catalog_roster("  max_active_accounts: 2\n").replace(
            "    roles: [caseworker]\n",
            "    roles: [caseworker]\n    active: false\n",
        ),
    ] {
        let out = roster()
            .file("r.yaml", &text)
            .args(&["check", "r.yaml"])
            .run();
        assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    }
}

#[test]
fn plan_summary_counts_the_roles_of_new_accounts() {
    // Against a new, empty store: every partner is created.
    let plan = |format: &str| {
        roster()
            .file("r.yaml", catalog_roster(""))
            .args(&[
                "plan",
                "--store",
                "sqlite:store.db",
                "r.yaml",
                "--format",
                format,
            ])
            .run()
    };
    let json = plan("json");
    assert_eq!(json.code, 0, "{}", json.stderr);
    let v: Value = serde_json::from_str(&json.stdout).unwrap();
    let s = &v["summary"];
    assert_eq!(
        (
            &s["create_accounts"],
            &s["new_account_roles"],
            &s["grant_roles"]
        ),
        (&Value::from(3), &Value::from(5), &Value::from(0)),
        "{s}"
    );
    let line =
        "Plan: 1 group to create, 3 accounts to create (with 5 roles), 3 memberships to add.";
    let human = plan("human");
    assert!(human.stdout.contains(line), "{}", human.stdout);
    let md = plan("markdown");
    assert!(md.stdout.contains(line), "{}", md.stdout);
}
