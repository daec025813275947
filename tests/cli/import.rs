//! `roster import csv`: the template, the roster it prints, and every way a
//! CSV file can be wrong.

use super::*;

const HEADER: &str = "first name,last name,email,birth date,phone,extension,zip,role,account\n";
const MANDY_ROW: &str = "Mandy,McCray,Mandy.McCray@example.com,1972-09-01,217-852-9634,12,62568,Public Viewer,MMcCray\n";
const JOSE_ROW: &str =
    "José,\"Núñez-O'Neil, Jr.\",jose@example.org,1979-02-28,+1 217 555 0101,,02134,individual,\n";

/// `roster import csv people.csv ARGS…` on this CSV content.
fn import(csv: impl AsRef<[u8]>, args: &[&str]) -> Output {
    let mut all = vec!["import", "csv", "people.csv"];
    all.extend_from_slice(args);
    roster().file("people.csv", csv).args(&all).run()
}

/// `roster check` on a roster file with this content.
fn check(yaml: &str) -> Output {
    roster()
        .file("imported.yaml", yaml)
        .args(&["check", "imported.yaml"])
        .run()
}

const PARTNERS_YAML: &str = r#"partners:
  - email: Mandy.McCray@example.com
    first_name: Mandy
    last_name: McCray
    birth_date: 1972-09-01
    phone: "217-852-9634"
    extension: "12"
    zip: "62568"
    role: public-viewer
    account: MMcCray

  - email: jose@example.org
    first_name: José
    last_name: Núñez-O'Neil, Jr.
    birth_date: 1979-02-28
    phone: "+1 217 555 0101"
    zip: "02134"
    role: individual
"#;

#[test]
fn template_prints_the_header_line() {
    let out = roster().args(&["import", "csv", "--template"]).run();
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (0, HEADER, "")
    );
}

#[test]
fn partners_in_csv_order_pass_check() {
    let out = import(format!("{HEADER}{MANDY_ROW}{JOSE_ROW}"), &[]);
    assert_eq!((out.code, out.stderr.as_str()), (0, ""));
    assert_eq!(out.stdout, format!("version: 1\n\n{PARTNERS_YAML}"));
    // Warnings only: nobody is in a group.
    let checked = check(&out.stdout);
    assert_eq!(checked.code, 0, "{}", checked.stdout);
    assert!(
        checked
            .stdout
            .ends_with("ok: 1 file, 0 groups, 2 partners (2 warnings)\n"),
        "{}",
        checked.stdout
    );
}

#[test]
fn with_group_every_partner_is_a_member() {
    let out = import(
        format!("{HEADER}{MANDY_ROW}{JOSE_ROW}"),
        &["--group", "Lakeland Career Services"],
    );
    assert_eq!((out.code, out.stderr.as_str()), (0, ""));
    let expected = format!(
        "version: 1\n\ngroups:\n  - name: Lakeland Career Services\n    type: organization\n    members:\n      - Mandy.McCray@example.com\n      - jose@example.org\n\n{PARTNERS_YAML}"
    );
    assert_eq!(out.stdout, expected);
    let checked = check(&out.stdout);
    assert_eq!(
        (checked.code, checked.stdout.as_str()),
        (0, "ok: 1 file, 1 group, 2 partners\n")
    );
}

#[test]
fn group_names_that_need_quotes_are_quoted() {
    let out = import(format!("{HEADER}{MANDY_ROW}"), &["--group", "true"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("  - name: \"true\"\n"),
        "{}",
        out.stdout
    );
    assert_eq!(check(&out.stdout).code, 0);
    let out = import(format!("{HEADER}{MANDY_ROW}"), &["--group", "  "]);
    assert_eq!((out.code, out.stdout.as_str()), (1, ""));
    assert_eq!(out.stderr, "error: --group needs a group name\n");
}

#[test]
fn only_the_required_columns() {
    let out = import(
        "email,last name,first name\nmandy@example.com,McCray,Mandy\n",
        &["--group", "ABC"],
    );
    assert_eq!((out.code, out.stderr.as_str()), (0, ""));
    assert_eq!(
        out.stdout,
        "version: 1\n\ngroups:\n  - name: ABC\n    type: organization\n    members:\n      - mandy@example.com\n\npartners:\n  - email: mandy@example.com\n    first_name: Mandy\n    last_name: McCray\n    role: public-viewer\n"
    );
    // It is a well-formed roster; only the default policy's required fields are missing.
    let checked = roster()
        .file("imported.yaml", &out.stdout)
        .args(&["check", "imported.yaml"])
        .findings();
    let codes: Vec<&str> = checked.1.iter().map(|f| f.0.as_str()).collect();
    assert_eq!(codes, ["missing-required-field"; 3]);
}

/// An address a live system holds though mail hosts refuse it (an
/// underscore in the domain) is imported, and `check` keeps it with a warning.
#[test]
fn an_undeliverable_but_valid_address_is_imported_with_a_warning() {
    let row = MANDY_ROW.replace("Mandy.McCray@example.com", "mandy@mail_host.example.com");
    let out = import(format!("{HEADER}{row}"), &["--group", "ABC"]);
    assert_eq!((out.code, out.stderr.as_str()), (0, ""), "{}", out.stdout);
    assert!(
        out.stdout.contains("mandy@mail_host.example.com"),
        "{}",
        out.stdout
    );
    let (code, findings) = roster()
        .file("imported.yaml", &out.stdout)
        .args(&["check", "imported.yaml"])
        .findings();
    let codes: Vec<&str> = findings.iter().map(|f| f.0.as_str()).collect();
    assert_eq!((code, codes), (0, vec!["undeliverable-email"]));
    // A truly malformed address is still refused.
    let bad = MANDY_ROW.replace("Mandy.McCray@example.com", "mandy@mail host.example.com");
    let out = import(format!("{HEADER}{bad}"), &[]);
    assert_eq!(out.code, 1, "{}", out.stdout);
}

#[test]
fn header_spellings_bom_crlf_and_blank_rows() {
    let csv = "\u{feff}FIRST-NAME,Last_Name,  E-Mail ,Birth_Date,PHONE,Zip\r\nMandy,McCray,mandy@example.com,1972-09-01,2178529634,62568\r\n,,,,,\r\n\r\n";
    // `e-mail` is not `email`: hyphens stand for spaces.
    let out = import(csv, &[]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.starts_with("people.csv:1: unknown column \"E-Mail\"; the accepted columns are: first name, last name, email, birth date, phone, extension, zip, role, account\n"), "{}", out.stderr);
    let out = import(csv.replace("  E-Mail ", "email"), &[]);
    assert_eq!((out.code, out.stderr.as_str()), (0, ""));
    assert_eq!(
        out.stdout,
        "version: 1\n\npartners:\n  - email: mandy@example.com\n    first_name: Mandy\n    last_name: McCray\n    birth_date: 1972-09-01\n    phone: \"2178529634\"\n    zip: \"62568\"\n    role: public-viewer\n"
    );
    let out = import(
        "first_name,LAST NAME,Email,role\nA,B,a@example.org,INDIVIDUAL\nC,D,c@example.org,public_viewer\n",
        &[],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("    role: individual\n"));
    assert_eq!(out.stdout.matches("role: public-viewer").count(), 1);
}

/// Each bad CSV gives exactly these lines on stderr, nothing on stdout, exit 1.
#[test]
fn bad_csv_files() {
    let accepted = "first name, last name, email, birth date, phone, extension, zip, role, account";
    let cases: Vec<(&str, String, String)> = vec![
        (
            "unknown header",
            "first name,last name,email,middle name\n".into(),
            format!("people.csv:1: unknown column \"middle name\"; the accepted columns are: {accepted}\n"),
        ),
        (
            "missing required header",
            "first name,email\nMandy,mandy@example.com\n".into(),
            "people.csv:1: missing required column \"last name\"; the header must name first name, last name and email\n".into(),
        ),
        (
            "two missing headers",
            "Name,Email\n".into(),
            format!("people.csv:1: unknown column \"Name\"; the accepted columns are: {accepted}\npeople.csv:1: missing required columns \"first name\", \"last name\"; the header must name first name, last name and email\n"),
        ),
        (
            "the same column twice",
            "first name,last name,email,EMAIL\n".into(),
            "people.csv:1: column \"email\" appears twice (columns 3 and 4)\n".into(),
        ),
        (
            "bad email",
            format!("{HEADER}{}", MANDY_ROW.replace("Mandy.McCray@example.com", "mandy.example.com")),
            "people.csv:2: email \"mandy.example.com\" is not a valid email address\n".into(),
        ),
        (
            "empty required cells",
            format!("{HEADER} ,McCray,,1972-09-01,,,,,\n"),
            "people.csv:2: first name is empty\npeople.csv:2: email is empty\n".into(),
        ),
        (
            "bad date",
            format!("{HEADER}{}", MANDY_ROW.replace("1972-09-01", "1972-02-30")),
            "people.csv:2: birth date is not a real date (YYYY-MM-DD)\n".into(),
        ),
        (
            "US-style date",
            format!("{HEADER}{}", MANDY_ROW.replace("1972-09-01", "09/01/1972")),
            "people.csv:2: birth date is not a real date (YYYY-MM-DD)\n".into(),
        ),
        (
            "bad phone",
            format!("{HEADER}{}", MANDY_ROW.replace("217-852-9634", "852-9634")),
            "people.csv:2: phone must have 10 digits (punctuation and a leading +1 are allowed)\n".into(),
        ),
        (
            "bad extension",
            format!("{HEADER}{}", MANDY_ROW.replace(",12,", ",12a,")),
            "people.csv:2: extension must be 1 to 6 digits\n".into(),
        ),
        (
            "bad zip",
            format!("{HEADER}{}", MANDY_ROW.replace("62568", "6256")),
            "people.csv:2: zip must be 5 digits or ZIP+4 (12345-6789)\n".into(),
        ),
        (
            "bad role",
            format!("{HEADER}{}", MANDY_ROW.replace("Public Viewer", "admin")),
            "people.csv:2: role must be public-viewer or individual (Public Viewer, Individual), found \"admin\"\n".into(),
        ),
        (
            "duplicate email, other case, after a quoted line break",
            format!("{HEADER}{}{JOSE_ROW}{}", MANDY_ROW.replace("Mandy,", "\"Mandy\nAnn\","), MANDY_ROW.replace("Mandy.McCray@", "MANDY.MCCRAY@")),
            "people.csv:5: email \"MANDY.MCCRAY@example.com\" is already on line 2 (emails compare case-insensitively)\n".into(),
        ),
        (
            "duplicate of a row that has other errors",
            format!("{HEADER}{}{MANDY_ROW}", MANDY_ROW.replace("62568", "6256")),
            "people.csv:2: zip must be 5 digits or ZIP+4 (12345-6789)\npeople.csv:3: email \"Mandy.McCray@example.com\" is already on line 2 (emails compare case-insensitively)\n".into(),
        ),
        (
            "line numbers count blank lines and old Mac line ends",
            "first name,last name,email\r\rA,B,bad\r\n\r\n\"C\nD\",D,c@example.org\nE,F,bad2\n".into(),
            "people.csv:3: email \"bad\" is not a valid email address\npeople.csv:7: email \"bad2\" is not a valid email address\n".into(),
        ),
        (
            "ragged rows",
            format!("{HEADER}Mandy,McCray,mandy@example.com\n{JOSE_ROW}{}", MANDY_ROW.trim_end().to_string() + ",extra\n"),
            "people.csv:2: this row has 3 fields; the header has 9\npeople.csv:4: this row has 10 fields; the header has 9\n".into(),
        ),
        (
            "a value under an empty header",
            "first name,last name,email,\nMandy,McCray,mandy@example.com,x\n".into(),
            "people.csv:2: field 4 has a value, but its column has no header\n".into(),
        ),
        (
            "every error in the file, in line order",
            format!("{HEADER}{}{JOSE_ROW}{}", MANDY_ROW.replace("62568", "6256"), JOSE_ROW.replace("individual", "x")),
            "people.csv:2: zip must be 5 digits or ZIP+4 (12345-6789)\npeople.csv:4: email \"jose@example.org\" is already on line 3 (emails compare case-insensitively)\npeople.csv:4: role must be public-viewer or individual (Public Viewer, Individual), found \"x\"\n".into(),
        ),
        (
            "empty file",
            String::new(),
            "people.csv:1: the file is empty; the first line must name the columns, e.g. `roster import csv --template` gives: first name,last name,email,birth date,phone,extension,zip,role,account\n".into(),
        ),
        (
            "blank lines only",
            "\n\n".into(),
            "people.csv:1: the file is empty; the first line must name the columns, e.g. `roster import csv --template` gives: first name,last name,email,birth date,phone,extension,zip,role,account\n".into(),
        ),
    ];
    let mut failures = Vec::new();
    for (name, csv, expected) in &cases {
        let out = import(csv, &[]);
        if (out.code, out.stdout.as_str(), out.stderr.as_str()) != (1, "", expected.as_str()) {
            failures.push(format!(
                "{name}: exit {}\n  expected {expected:?}\n  found    {:?}\n  stdout   {:?}",
                out.code, out.stderr, out.stdout
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn not_utf8() {
    let mut csv = format!("{HEADER}Mandy,McCray,mandy@example.com\n").into_bytes();
    csv.extend_from_slice(b"A,\xff,a@example.org,,,,,,\n");
    let out = import(csv, &[]);
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr,
        "people.csv:2: this row has 3 fields; the header has 9\npeople.csv:3: field 2 is not valid UTF-8 text; save the file as UTF-8 (CSV UTF-8)\n"
    );
}

#[test]
fn unreadable_files() {
    let out = roster().args(&["import", "csv", "missing.csv"]).run();
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (
            1,
            "",
            "missing.csv: cannot read: no such file or directory\n"
        )
    );
    let r = roster().file("dir/x.txt", "");
    let out = r.args(&["import", "csv", "dir"]).run();
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (1, "dir: cannot read: it is a directory, not a CSV file\n")
    );
}

#[test]
fn personal_data_is_never_echoed() {
    let secrets = ["1972-02-30", "852-9634x", "6256", "12a"];
    let row = "Mandy,McCray,mandy@example.com,1972-02-30,852-9634x,12a,6256,,\n";
    let out = import(format!("{HEADER}{row}"), &[]);
    assert_eq!(out.code, 1);
    assert_eq!(out.stderr.lines().count(), 4, "{}", out.stderr);
    for s in secrets {
        assert!(!out.stderr.contains(s), "{s} echoed: {}", out.stderr);
    }
    assert!(out.stdout.is_empty());
}

#[test]
fn usage() {
    let out = roster()
        .args(&["import", "csv", "x.csv", "--template"])
        .run();
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("cannot be used with"), "{}", out.stderr);
    let out = roster().args(&["import", "csv"]).run();
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("<FILE>"), "{}", out.stderr);
}
