//! `roster completions`, `roster man` and `roster report --html`: scripts
//! checked by the shells that run them, man pages by `man`, and the audit
//! report on stores seeded through `roster apply`, read as text and in a
//! real headless browser.

use super::serve::{ok_in, run_in};
use super::store::{Backend, seeded_with};
use super::*;

/// Two organizations and a project: a user manager with personal data, an
/// invited caseworker, a person signed in by SSO and a deactivated account.
const SEED: &str = r#"version: 1
policy:
  required_fields: []
groups:
  - name: North Team
    members:
      - email: brandon.mitchell@example.edu
        user_manager: true
      - noelle.holiday@example.edu
      - sam.smith@example.edu
  - name: South Team
    members:
      - email: pat.lee@example.edu
        user_manager: true
      - old.gone@example.edu
  - name: Pilot Study
    type: project
    members:
      - noelle.holiday@example.edu
partners:
  - email: brandon.mitchell@example.edu
    first_name: Brandon
    last_name: Mitchell
    birth_date: 1980-02-03
    phone: "217-555-0101"
    sign_in: password
  - email: noelle.holiday@example.edu
    first_name: Noelle
    last_name: Holiday
    birth_date: 1990-04-05
    phone: "217-555-0102"
  - email: sam.smith@example.edu
    first_name: Sam
    last_name: Smith
    sign_in: sso
  - email: pat.lee@example.edu
    first_name: Pat
    last_name: Lee
    sign_in: password
  - email: old.gone@example.edu
    first_name: Old
    last_name: Gone
    active: false
"#;

/// `roster report --html -o report.html` with `args`: the page.
fn report(r: &Roster, db: &str, args: &[&str]) -> String {
    let mut all = vec!["report", "--html", "-o", "report.html", "--store", db];
    all.extend_from_slice(args);
    let out = ok_in(r.path(), &all);
    assert!(
        out.stderr.contains("Wrote the audit report of"),
        "{}",
        out.stderr
    );
    std::fs::read_to_string(r.path().join("report.html")).unwrap()
}

/// The text of the element with this id (one line, as written).
fn by_id<'a>(html: &'a str, id: &str) -> &'a str {
    let open = format!("id=\"{id}\">");
    let at = html
        .find(&open)
        .unwrap_or_else(|| panic!("no #{id} in\n{html}"))
        + open.len();
    let end = html[at..].find('<').map_or(html.len(), |i| at + i);
    &html[at..end]
}

/// The `<section id=…>` with this id, up to the next section at its level.
fn section<'a>(html: &'a str, id: &str) -> &'a str {
    let open = format!("<section id=\"{id}\">");
    let at = html
        .find(&open)
        .unwrap_or_else(|| panic!("no section #{id}"));
    let end = html[at + open.len()..]
        .find("<section id=\"")
        .map_or(html.len(), |i| at + open.len() + i);
    &html[at..end]
}

fn the_report_lists_groups_accounts_managers_and_the_verified_log(b: Backend) {
    let (r, db) = seeded_with(b, SEED);
    let html = report(&r, &db, &[]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(r.path().join("report.html"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the report names people");
    }
    for (id, n) in [
        ("count-groups", "3"),
        ("count-accounts", "5"),
        ("count-active", "4"),
        ("count-activated", "2"),
        ("count-sso", "1"),
        ("count-invited", "1"),
        ("count-never-activated", "0"),
        ("count-deactivated", "1"),
    ] {
        assert_eq!(by_id(&html, id), n, "{id}");
    }
    // Groups with their members, user managers marked.
    let groups = section(&html, "groups");
    for name in ["North Team", "South Team", "Pilot Study"] {
        assert!(groups.contains(&format!("{name} <span")), "{name}");
    }
    assert!(groups.contains("3 members, 1 user manager"), "{groups}");
    assert!(groups.contains("<td>NHoliday</td><td>Noelle Holiday</td>"));
    // Each account under its one status.
    let status = |key: &str| {
        let s = section(&html, &format!("status-{key}"));
        ["BMitchell", "NHoliday", "SSmith", "PLee", "OGone"]
            .into_iter()
            .filter(|u| s.contains(&format!("<td>{u}</td>")))
            .collect::<Vec<_>>()
    };
    assert_eq!(status("active"), ["BMitchell", "SSmith", "PLee"]);
    assert_eq!(status("invited"), ["NHoliday"]);
    assert!(status("never-activated").is_empty());
    assert_eq!(status("deactivated"), ["OGone"]);
    // The invitation's date is shown.
    assert!(section(&html, "status-invited").contains("<td>20"));
    // User managers per organization; a project is not an organization.
    let managers = section(&html, "user-managers");
    assert!(
        managers.contains("<td>North Team</td><td>BMitchell</td>"),
        "{managers}"
    );
    assert!(
        managers.contains("<td>South Team</td><td>PLee</td>"),
        "{managers}"
    );
    assert!(!managers.contains("Pilot Study"));
    // The audit log: its verdict, and rows with the actor.
    let verdict = by_id(&html, "audit-verdict");
    assert!(
        verdict.starts_with("verified: the hash chain of "),
        "{verdict}"
    );
    assert!(section(&html, "audit").contains("create_account"));
    // Personal data stays masked.
    // The store keeps phones as digits.
    for pii in ["1980-02-03", "2175550101", "1990-04-05", "2175550102"] {
        assert!(!html.contains(pii), "{pii} in the report");
    }
    assert!(html.contains("<td>***</td>"));
    // Self-contained and readable without JavaScript; the page itself
    // forbids scripts and outside loads.
    assert!(!html.to_lowercase().contains("<script"));
    assert!(html.contains(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
    ));
    assert!(!html.contains("http://") && !html.contains("https://"));
    // The store URL is shown without its password.
    assert!(!html.contains(super::pg::PASSWORD));
}

/// The accounts of the `status-{key}` section, and its invitation cells.
fn listed_under<'a>(html: &'a str, key: &str) -> (Vec<&'static str>, &'a str) {
    let s = section(html, &format!("status-{key}"));
    let names = ["BMitchell", "NHoliday", "SSmith", "PLee", "OGone"]
        .into_iter()
        .filter(|u| s.contains(&format!("<td>{u}</td>")))
        .collect();
    (names, s)
}

/// "Invited" holds live invitations; "never activated" those whose link
/// expired or whose mail failed, with the rule said on the page.
fn invited_and_never_activated_are_told_apart(b: Backend) {
    let (r, db) = seeded_with(b, SEED);
    let mut sql = super::activate::Sql::open(r.path(), &db);
    let check = |html: &str, state: &str| {
        assert_eq!(by_id(html, "count-invited"), "0");
        assert_eq!(by_id(html, "count-never-activated"), "1");
        assert!(listed_under(html, "invited").0.is_empty());
        let (names, s) = listed_under(html, "never-activated");
        assert_eq!(names, ["NHoliday"]);
        assert!(s.contains(&format!("<td>{state}</td>")), "{s}");
        assert!(
            s.contains("whose link expired (older than the invitation TTL) or whose mail failed"),
            "{s}"
        );
    };
    // Live: queued after apply.
    let html = report(&r, &db, &[]);
    let (names, s) = listed_under(&html, "invited");
    assert_eq!(names, ["NHoliday"]);
    assert!(s.contains("<td>queued</td>"), "{s}");
    assert!(s.contains("and its link has not expired"), "{s}");
    // The mail failed for good.
    sql.batch("UPDATE outbox SET failed_at = '2026-01-01T00:00:00Z', error = '550 no such user'");
    check(&report(&r, &db, &[]), "failed");
    // The link outlived the TTL.
    sql.batch(
        "UPDATE outbox SET failed_at = NULL, error = NULL; \
         UPDATE accounts SET token_issued_at = '2000-01-01T00:00:00Z'",
    );
    check(&report(&r, &db, &[]), "expired");
    // A TTL long enough makes it live again.
    let html = report(&r, &db, &["--invite-ttl", "100000d"]);
    assert_eq!(listed_under(&html, "invited").0, ["NHoliday"]);
    assert_eq!(by_id(&html, "count-never-activated"), "0");
}

on_every_store!(
    the_report_lists_groups_accounts_managers_and_the_verified_log,
    invited_and_never_activated_are_told_apart,
);

#[test]
fn show_pii_puts_birth_dates_and_phones_in_the_report() {
    let (r, db) = seeded_with(Backend::Sqlite, SEED);
    let html = report(&r, &db, &["--show-pii"]);
    for pii in ["1980-02-03", "2175550101", "1990-04-05"] {
        assert!(html.contains(pii), "{pii} missing with --show-pii");
    }
    assert!(html.contains("Personal data is shown"));
}

#[test]
fn last_limits_the_rows_listed_not_the_rows_verified() {
    let (r, db) = seeded_with(Backend::Sqlite, SEED);
    let html = report(&r, &db, &["--last", "3"]);
    let audit = section(&html, "audit");
    assert_eq!(
        audit.matches("<tr><td class=\"num\">").count(),
        3,
        "{audit}"
    );
    let total = by_id(&html, "audit-verdict");
    assert!(total.contains("intact"), "{total}");
    let rows: usize = total
        .split_whitespace()
        .find_map(|w| w.parse().ok())
        .unwrap();
    assert!(rows > 3, "{total}");
    assert!(audit.contains(&format!("The last 3 of {rows} rows")));
}

#[test]
fn last_zero_lists_no_rows_but_still_verifies() {
    let (r, db) = seeded_with(Backend::Sqlite, SEED);
    let html = report(&r, &db, &["--last", "0"]);
    assert!(by_id(&html, "audit-verdict").starts_with("verified: "));
    assert!(section(&html, "audit").contains("No rows listed (--last 0)"));
}

#[test]
fn an_empty_store_is_reported_with_a_note_to_check_the_url() {
    let r = roster();
    let out = ok_in(
        r.path(),
        &[
            "report",
            "--html",
            "-o",
            "r.html",
            "--store",
            "sqlite:typo.db",
        ],
    );
    assert!(
        out.stderr
            .contains("note: the store sqlite:typo.db is empty (revision 0, nothing ever applied); check --store"),
        "{}",
        out.stderr
    );
    // Reading made no store.
    assert!(!r.path().join("typo.db").exists());
    let html = std::fs::read_to_string(r.path().join("r.html")).unwrap();
    assert!(html.contains("The store has no groups."));
    assert!(section(&html, "audit").contains("The audit log has no rows."));
}

#[test]
fn a_tampered_audit_row_shows_where_the_chain_breaks() {
    let (r, db) = seeded_with(Backend::Sqlite, SEED);
    let conn = rusqlite::Connection::open(r.path().join("store.db")).unwrap();
    conn.execute_batch("UPDATE audit SET actor = 'mallory' WHERE seq = 4")
        .unwrap();
    drop(conn);
    let mut all = vec!["report", "--html", "-o", "report.html", "--store", &db];
    all.push("--last");
    all.push("100");
    let out = ok_in(r.path(), &all);
    assert!(
        out.stderr
            .contains("warning: the audit log is broken at seq 4"),
        "{}",
        out.stderr
    );
    let html = std::fs::read_to_string(r.path().join("report.html")).unwrap();
    let verdict = by_id(&html, "audit-verdict");
    assert!(verdict.starts_with("broken at seq 4: "), "{verdict}");
    assert!(html.contains("class=\"verdict bad\""));
    assert!(html.contains("<tr class=\"broken\"><td class=\"num\">4</td>"));
    assert!(!html.contains("verified:"));
}

#[test]
fn hostile_names_are_escaped() {
    let yaml = r#"version: 1
policy:
  required_fields: []
groups:
  - name: "<script>alert('grp')</script>"
    members:
      - email: q@example.edu
        user_manager: true
partners:
  - email: q@example.edu
    first_name: 'Bob "the" <b>bold</b>'
    last_name: "O'Brien</td><img src=x onerror=alert(1)>"
"#;
    let r = roster().file("seed.yaml", yaml);
    ok_in(
        r.path(),
        &[
            "apply",
            "--yes",
            "--store",
            "sqlite:store.db",
            "--actor",
            "<img src=x onerror=alert(2)>",
            "seed.yaml",
        ],
    );
    let html = report(&r, "sqlite:store.db", &[]);
    assert!(!html.to_lowercase().contains("<script"), "{html}");
    assert!(
        !html.contains("<img") && !html.contains("<b>bold"),
        "{html}"
    );
    assert!(html.contains("&lt;script&gt;alert(&#x27;grp&#x27;)&lt;&#x2f;script&gt;"));
    assert!(html.contains("Bob &quot;the&quot; &lt;b&gt;bold&lt;&#x2f;b&gt;"));
    assert!(html.contains("O&#x27;Brien&lt;&#x2f;td&gt;&lt;img"));
    assert!(html.contains("<td>&lt;img src=x onerror=alert(2)&gt;</td>"));
}

/// The seed with South Team's members moved to a new group West, and Pat
/// no longer South Team's user manager: a plan of every kind of mark.
fn moved(seed: &str) -> String {
    seed.replace(
        "  - name: Pilot Study\n",
        "  - name: West\n    members:\n      - sam.smith@example.edu\n  - name: Pilot Study\n",
    )
    .replace(
        "      - email: pat.lee@example.edu\n        user_manager: true\n      - old.gone@example.edu\n",
        "      - pat.lee@example.edu\n",
    )
}

#[test]
fn a_saved_plan_is_highlighted_with_its_digest_and_seal() {
    let (r, db) = seeded_with(Backend::Sqlite, SEED);
    let r = r.file("next.yaml", moved(SEED));
    ok_in(
        r.path(),
        &["plan", "--store", &db, "-o", "plan.json", "next.yaml"],
    );
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(r.path().join("plan.json")).unwrap())
            .unwrap();
    let html = report(&r, &db, &["--plan", "plan.json"]);
    let plan = section(&html, "plan");
    assert_eq!(
        by_id(&html, "plan-digest"),
        saved["digest"].as_str().unwrap()
    );
    assert_eq!(by_id(&html, "plan-seal"), saved["seal"].as_str().unwrap());
    assert!(
        plan.contains("<li class=\"add\">West: create group (organization)</li>"),
        "{plan}"
    );
    assert!(
        plan.contains("<li class=\"add\">West: + SSmith</li>"),
        "{plan}"
    );
    assert!(
        plan.contains("<li class=\"remove\">South Team: - OGone</li>"),
        "{plan}"
    );
    assert!(
        plan.contains("<li class=\"change\">South Team: ~ PLee: take back user manager</li>"),
        "{plan}"
    );
    // The rows themselves are marked where they stand.
    let groups = section(&html, "groups");
    assert!(groups.contains("<h3 class=\"group add\">West"), "{groups}");
    assert!(
        groups.contains("<tr class=\"remove inactive\"><td>OGone</td>"),
        "{groups}"
    );
    assert!(
        groups.contains("<tr class=\"change\"><td>PLee</td>"),
        "{groups}"
    );
    assert!(groups.contains("user manager to be taken back"));
    // Without --plan, nothing is highlighted.
    let plain = report(&r, &db, &[]);
    assert!(!plain.contains("id=\"plan\""));
    assert!(!plain.contains("class=\"remove"));
}

#[test]
fn a_plan_the_store_has_moved_past_is_marked_stale() {
    let (r, db) = seeded_with(Backend::Sqlite, SEED);
    let r = r.file("next.yaml", moved(SEED));
    ok_in(
        r.path(),
        &["plan", "--store", &db, "-o", "plan.json", "next.yaml"],
    );
    ok_in(
        r.path(),
        &["token", "create", "--name", "ci", "--store", &db],
    );
    let html = report(&r, &db, &["--plan", "plan.json"]);
    assert!(
        section(&html, "plan").contains("apply would refuse this plan as stale"),
        "{html}"
    );
}

#[test]
fn bad_inputs_are_clear_errors() {
    let (r, db) = seeded_with(Backend::Sqlite, SEED);
    let r = r
        .file("next.yaml", moved(SEED))
        .file("garbage.json", "{\"format_version\": 1,\n  oops");
    ok_in(
        r.path(),
        &["plan", "--store", &db, "-o", "plan.json", "next.yaml"],
    );
    let fails = |args: &[&str]| {
        let mut all = vec!["report", "--html", "--store", db.as_str()];
        all.extend_from_slice(args);
        let out = run_in(r.path(), &all);
        assert_eq!(out.code, 1, "{args:?}: {}{}", out.stdout, out.stderr);
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
        out.stderr
    };
    // The -o path cannot be written: its directory is missing, or it is a directory.
    let e = fails(&["-o", "no/such/dir/report.html"]);
    assert!(
        e.starts_with("error: no/such/dir/report.html: cannot write the report: "),
        "{e}"
    );
    std::fs::create_dir(r.path().join("adir")).unwrap();
    let e = fails(&["-o", "adir"]);
    assert!(
        e.starts_with("error: adir: cannot write the report: "),
        "{e}"
    );
    // A plan for another store.
    ok_in(
        r.path(),
        &[
            "apply",
            "--yes",
            "--store",
            "sqlite:other.db",
            "--credentials-file",
            "c2.csv",
            "seed.yaml",
        ],
    );
    ok_in(
        r.path(),
        &[
            "plan",
            "--store",
            "sqlite:other.db",
            "-o",
            "other.json",
            "next.yaml",
        ],
    );
    let e = fails(&["-o", "r.html", "--plan", "other.json"]);
    assert!(
        e.contains("other.json") && e.contains("sqlite:other.db"),
        "{e}"
    );
    // An altered plan: one removal taken out.
    let text = std::fs::read_to_string(r.path().join("plan.json")).unwrap();
    let mut v: Value = serde_json::from_str(&text).unwrap();
    v["actions"].as_array_mut().unwrap().pop();
    std::fs::write(
        r.path().join("altered.json"),
        serde_json::to_string_pretty(&v).unwrap(),
    )
    .unwrap();
    let e = fails(&["-o", "r.html", "--plan", "altered.json"]);
    assert!(
        e.starts_with("error: altered.json: plan was altered after it was made"),
        "{e}"
    );
    // Not a plan at all, and no such file.
    let e = fails(&["-o", "r.html", "--plan", "garbage.json"]);
    assert!(
        e.contains("garbage.json:2:") && e.contains("not a roster plan"),
        "{e}"
    );
    let e = fails(&["-o", "r.html", "--plan", "missing.json"]);
    assert!(e.contains("missing.json: cannot read the plan"), "{e}");
    // Nothing was written by any of them.
    assert!(!r.path().join("r.html").exists());
    // --html is required: the only format, named.
    let out = run_in(r.path(), &["report", "-o", "r.html", "--store", &db]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("--html"), "{}", out.stderr);
}

#[test]
fn the_report_reads_in_a_real_browser_without_scripts() {
    if browser::skipped() {
        return;
    }
    let (r, db) = seeded_with(Backend::Sqlite, SEED);
    let r = r.file("next.yaml", moved(SEED));
    ok_in(
        r.path(),
        &["plan", "--store", &db, "-o", "plan.json", "next.yaml"],
    );
    report(&r, &db, &["--plan", "plan.json"]);
    let url = format!("file://{}", r.path().join("report.html").display());
    let dom = browser::dom(&url);
    for name in ["North Team", "South Team", "Pilot Study", "West"] {
        assert!(dom.contains(name), "{name} not in the page:\n{dom}");
    }
    assert!(dom.contains("verified: the hash chain of "), "{dom}");
    assert!(dom.contains("to be removed") && dom.contains("to be created"));
    assert!(!dom.to_lowercase().contains("<script"), "{dom}");
    let png = browser::screenshot(&url, "report", 1200, 1600);
    assert!(png.is_file());
}

/// `roster completions SHELL`: the script.
fn completions(shell: &str) -> String {
    let out = ok_in(roster().path(), &["completions", shell]);
    out.stdout
}

fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn completions_name_the_verbs_and_flags_for_every_shell() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let script = completions(shell);
        // fish names a long flag `-l store`; the others `--store`.
        let flag = |f: &str| match shell {
            "fish" => format!("-l {f}"),
            _ => format!("--{f}"),
        };
        let words = ["plan", "apply", "report", "completions"]
            .map(str::to_string)
            .into_iter()
            .chain([flag("store"), flag("show-pii"), flag("plan")]);
        for word in words {
            assert!(script.contains(&word), "{shell}: no {word}");
        }
    }
    let out = run_in(roster().path(), &["completions", "tcsh"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("bash"), "{}", out.stderr);
}

#[test]
fn the_bash_script_parses_and_registers_roster() {
    let r = roster().file("roster.bash", completions("bash"));
    let path = r.path().join("roster.bash");
    let check = Command::new("bash").arg("-n").arg(&path).output().unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let sourced = Command::new("bash")
        .arg("-c")
        .arg(format!("source '{}' && complete -p roster", path.display()))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&sourced.stdout);
    assert!(
        sourced.status.success(),
        "{}",
        String::from_utf8_lossy(&sourced.stderr)
    );
    assert!(said.contains("roster"), "{said}");
    // And it completes: the verbs after `roster `.
    let words = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source '{}'; COMP_WORDS=(roster re); COMP_CWORD=1; COMP_LINE='roster re'; COMP_POINT=9; \
             _roster roster re roster; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            path.display()
        ))
        .output()
        .unwrap();
    let words = String::from_utf8_lossy(&words.stdout);
    assert!(words.lines().any(|w| w == "report"), "{words}");
}

#[test]
fn the_zsh_and_fish_scripts_parse_where_those_shells_are_installed() {
    for (shell, flag) in [("zsh", "-n"), ("fish", "--no-execute")] {
        if !have(shell) {
            eprintln!("skipped: {shell} is not installed");
            continue;
        }
        let r = roster().file("script", completions(shell));
        let out = Command::new(shell)
            .arg(flag)
            .arg(r.path().join("script"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{shell}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn the_man_page_renders_and_one_page_per_verb_is_written() {
    let r = roster();
    let page = ok_in(r.path(), &["man"]).stdout;
    for part in [
        ".TH roster 1",
        ".SH NAME",
        ".SH SYNOPSIS",
        ".SH OPTIONS",
        ".SH SUBCOMMANDS",
    ] {
        assert!(page.contains(part), "no {part}:\n{page}");
    }
    let out = ok_in(r.path(), &["man", "-o", "man/pages"]);
    assert!(out.stderr.contains("roster-report.1"), "{}", out.stderr);
    let dir = r.path().join("man/pages");
    for verb in [
        "plan",
        "apply",
        "report",
        "completions",
        "man",
        "token-create",
    ] {
        assert!(dir.join(format!("roster-{verb}.1")).is_file(), "{verb}");
    }
    assert!(dir.join("roster.1").is_file());
    let report = dir.join("roster-report.1");
    let rendered = if have("man") {
        Command::new("man")
            .arg("-l")
            .arg(&report)
            .env("MANWIDTH", "100")
            .env("MANPAGER", "cat")
            .output()
            .unwrap()
    } else if have("groff") {
        Command::new("groff")
            .args(["-man", "-Tutf8"])
            .arg(&report)
            .output()
            .unwrap()
    } else {
        eprintln!("skipped rendering: neither man nor groff is installed");
        let text = std::fs::read_to_string(&report).unwrap();
        assert!(text.contains(".TH roster-report 1") && text.contains("\\-\\-show\\-pii"));
        return;
    };
    assert!(rendered.status.success());
    let text = String::from_utf8_lossy(&rendered.stdout);
    // man and groff may hyphenate or embolden by overstriking; compare plain words.
    let mut plain = String::new();
    for c in text.chars() {
        if c == '\u{8}' {
            plain.pop();
        } else {
            plain.push(c);
        }
    }
    let plain = plain.replace('‐', "-");
    assert!(plain.contains("roster-report"), "{plain}");
    assert!(
        plain.contains("--show-pii") || plain.contains("show-pii"),
        "{plain}"
    );
    assert!(plain.contains("self-contained HTML"), "{plain}");
}

#[test]
fn man_says_when_it_cannot_write_its_directory() {
    let r = roster().file("afile", "x");
    let out = run_in(r.path(), &["man", "-o", "afile/pages"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .starts_with("error: afile/pages: cannot write the man pages: "),
        "{}",
        out.stderr
    );
}

/// Through SCIM (`roster serve` over the seeded store): the groups and
/// accounts are those of the store itself; the audit log and activation,
/// which SCIM does not publish, are said to be unknown, not verified.
#[test]
fn a_scim_store_reports_what_scim_publishes_and_says_what_it_does_not() {
    let (r, db) = seeded_with(Backend::Sqlite, SEED);
    let token = ok_in(
        r.path(),
        &["token", "create", "--name", "ci", "--store", &db],
    )
    .stdout
    .trim()
    .to_string();
    let server = super::serve::start(r.path(), &db);
    let url = format!("scim+{}", server.base);
    let out = Command::new(env!("CARGO_BIN_EXE_roster"))
        .args(["report", "--html", "-o", "scim.html", "--store", &url])
        .current_dir(r.path())
        .env("ROSTER_SCIM_TOKEN", &token)
        .env_remove("ROSTER_SHOW_PII")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let html = std::fs::read_to_string(r.path().join("scim.html")).unwrap();
    assert_eq!(by_id(&html, "count-accounts"), "5");
    assert_eq!(by_id(&html, "count-active"), "4");
    assert_eq!(
        by_id(&html, "count-sign-in-unknown"),
        "not published by this store"
    );
    assert!(section(&html, "groups").contains("North Team <span"));
    let verdict = by_id(&html, "audit-verdict");
    assert!(verdict.starts_with("not kept: "), "{verdict}");
    assert!(!html.contains("verified:"));
    assert!(!html.contains(&token));
    drop(server);
}
