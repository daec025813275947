//! Partners from a CSV file in the career-services template, as a roster
//! file (`roster import csv`).
//!
//! The header names the columns, in any order: `first name`, `last name` and
//! `email` are required; `birth date`, `phone`, `extension`, `zip`, `role`
//! and `account` are optional. Header names compare case-insensitively, with
//! spaces, underscores and hyphens alike (`First Name`, `first_name`,
//! `FIRST-NAME`). Cells are trimmed; an empty optional cell is no value;
//! rows whose cells are all empty are skipped. Every bad row comes back as
//! (line, message), and then no roster does. Messages never repeat a birth
//! date, phone, extension or ZIP.

use crate::roster::model::{Group, GroupType, Member, Partner, Role, RosterFile};
use crate::roster::normalize;
use std::collections::HashMap;

/// The template's columns, in the template's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Column {
    FirstName,
    LastName,
    Email,
    BirthDate,
    Phone,
    Extension,
    Zip,
    Role,
    Account,
}

const COLUMNS: [(Column, &str); 9] = [
    (Column::FirstName, "first name"),
    (Column::LastName, "last name"),
    (Column::Email, "email"),
    (Column::BirthDate, "birth date"),
    (Column::Phone, "phone"),
    (Column::Extension, "extension"),
    (Column::Zip, "zip"),
    (Column::Role, "role"),
    (Column::Account, "account"),
];

const REQUIRED: [Column; 3] = [Column::FirstName, Column::LastName, Column::Email];

fn column_name(c: Column) -> &'static str {
    COLUMNS.iter().find(|(k, _)| *k == c).map_or("", |(_, n)| n)
}

fn accepted() -> String {
    COLUMNS.map(|(_, n)| n).join(", ")
}

/// `First_Name`, `first-name`, ` FIRST  NAME ` → `first name`.
fn header_key(s: &str) -> String {
    s.to_lowercase()
        .replace(['_', '-'], " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The template's header line: every column, in order.
pub fn template() -> String {
    COLUMNS.map(|(_, n)| n).join(",")
}

/// A value the user wrote, for a message: quoted, escaped, cut short.
fn shown(s: &str) -> String {
    const MAX: usize = 60;
    if s.chars().count() > MAX {
        let cut: String = s.chars().take(MAX).collect();
        format!("{cut:?}…")
    } else {
        format!("{s:?}")
    }
}

/// Errors as (1-based line, message), in file order.
pub type Errors = Vec<(u64, String)>;

/// Turn the CSV into a roster file: the partners in file order, and with
/// `group` one organization holding them all. Pure.
pub fn import(bytes: &[u8], group: Option<&str>) -> Result<RosterFile, Errors> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let mut records = reader.byte_records();
    let mut lines = Lines::new(bytes);
    let mut errors: Errors = Vec::new();

    // The header: the first line.
    let header = match records.next() {
        None => {
            return Err(vec![(
                1,
                format!(
                    "the file is empty; the first line must name the columns, e.g. `roster import csv --template` gives: {}",
                    COLUMNS.map(|(_, n)| n).join(",")
                ),
            )]);
        }
        Some(Err(e)) => return Err(vec![csv_error(&mut lines, &e)]),
        Some(Ok(r)) => r,
    };
    let header_line = header.position().map_or(1, |p| lines.of(p));
    let header = match csv::StringRecord::from_byte_record(header) {
        Ok(h) => h,
        Err(_) => {
            return Err(vec![(
                header_line,
                "the header is not valid UTF-8 text; save the file as UTF-8 (CSV UTF-8)".into(),
            )]);
        }
    };
    // Which column holds what; `None` for columns with an empty header.
    let mut columns: Vec<Option<Column>> = Vec::new();
    let mut seen: HashMap<Column, usize> = HashMap::new();
    for (i, cell) in header.iter().enumerate() {
        let key = header_key(cell);
        if key.is_empty() {
            columns.push(None);
            continue;
        }
        match COLUMNS.iter().find(|(_, n)| *n == key) {
            None => errors.push((
                header_line,
                format!(
                    "unknown column {}; the accepted columns are: {}",
                    shown(cell.trim()),
                    accepted()
                ),
            )),
            Some((c, _)) => {
                if let Some(first) = seen.insert(*c, i) {
                    errors.push((
                        header_line,
                        format!(
                            "column {} appears twice (columns {} and {})",
                            shown(column_name(*c)),
                            first + 1,
                            i + 1
                        ),
                    ));
                }
                columns.push(Some(*c));
            }
        }
    }
    let missing: Vec<&str> = REQUIRED
        .iter()
        .filter(|c| !seen.contains_key(c))
        .map(|c| column_name(*c))
        .collect();
    if !missing.is_empty() {
        let s = if missing.len() > 1 { "s" } else { "" };
        errors.push((
            header_line,
            format!(
                "missing required column{s} {}; the header must name first name, last name and email",
                missing
                    .iter()
                    .map(|m| format!("\"{m}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    if !errors.is_empty() {
        return Err(errors);
    }

    let mut partners: Vec<Partner> = Vec::new();
    let mut first_seen: HashMap<String, u64> = HashMap::new();
    for record in records {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                errors.push(csv_error(&mut lines, &e));
                continue;
            }
        };
        let line = record.position().map_or(0, |p| lines.of(p));
        let record = match csv::StringRecord::from_byte_record(record) {
            Ok(r) => r,
            Err(e) => {
                let field = e.utf8_error().field() + 1;
                errors.push((
                    line,
                    format!(
                        "field {field} is not valid UTF-8 text; save the file as UTF-8 (CSV UTF-8)"
                    ),
                ));
                continue;
            }
        };
        if record.iter().all(|c| c.trim().is_empty()) {
            continue; // a blank row, as spreadsheets leave at the end
        }
        if record.len() != columns.len() {
            errors.push((
                line,
                format!(
                    "this row has {} field{}; the header has {}",
                    record.len(),
                    if record.len() == 1 { "" } else { "s" },
                    columns.len()
                ),
            ));
            continue;
        }
        let mut row: HashMap<Column, &str> = HashMap::new();
        for (i, (cell, col)) in record.iter().zip(&columns).enumerate() {
            let cell = cell.trim();
            match col {
                Some(c) => {
                    row.insert(*c, cell);
                }
                None if !cell.is_empty() => errors.push((
                    line,
                    format!("field {} has a value, but its column has no header", i + 1),
                )),
                None => {}
            }
        }
        let get = |c: Column| row.get(&c).copied().filter(|s| !s.is_empty());
        let before = errors.len();
        let mut err = |m: String| errors.push((line, m));

        for c in REQUIRED {
            if get(c).is_none() {
                err(format!("{} is empty", column_name(c)));
            }
        }
        if let Some(e) = get(Column::Email) {
            if !normalize::is_valid_email(e) {
                err(format!("email {} is not a valid email address", shown(e)));
            } else if let Some(first) = first_seen.get(&normalize::email(e)) {
                err(format!(
                    "email {} is already on line {first} (emails compare case-insensitively)",
                    shown(e)
                ));
            } else {
                // Recorded even if the row has other errors: a later copy is still a duplicate.
                first_seen.insert(normalize::email(e), line);
            }
        }
        if let Some(d) = get(Column::BirthDate) {
            match normalize::is_valid_date(d) {
                Ok(()) => {}
                Err("has a year before 1900") => err("birth date has a year before 1900".into()),
                Err(_) => err("birth date is not a real date (YYYY-MM-DD)".into()),
            }
        }
        if let Some(p) = get(Column::Phone)
            && normalize::phone(p).is_none()
        {
            err("phone must have 10 digits (punctuation and a leading +1 are allowed)".into());
        }
        if let Some(x) = get(Column::Extension)
            && !normalize::is_valid_extension(x)
        {
            err("extension must be 1 to 6 digits".into());
        }
        if let Some(z) = get(Column::Zip)
            && !normalize::is_valid_zip(z)
        {
            err("zip must be 5 digits or ZIP+4 (12345-6789)".into());
        }
        let role = match get(Column::Role) {
            None => Some(Role::PublicViewer),
            Some(r) => match header_key(r).as_str() {
                "public viewer" => Some(Role::PublicViewer),
                "individual" => Some(Role::Individual),
                _ => {
                    err(format!(
                        "role must be public-viewer or individual (Public Viewer, Individual), found {}",
                        shown(r)
                    ));
                    None
                }
            },
        };
        if errors.len() > before {
            continue;
        }
        let (Some(email), Some(first_name), Some(last_name), Some(role)) = (
            get(Column::Email),
            get(Column::FirstName),
            get(Column::LastName),
            role,
        ) else {
            continue; // reported above
        };
        let opt = |c: Column| get(c).map(str::to_owned);
        partners.push(Partner {
            email: email.to_owned(),
            first_name: first_name.to_owned(),
            last_name: last_name.to_owned(),
            birth_date: opt(Column::BirthDate),
            phone: opt(Column::Phone),
            extension: opt(Column::Extension),
            zip: opt(Column::Zip),
            role: Some(role.as_str().to_string()),
            account: opt(Column::Account),
            ..Partner::default()
        });
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let groups = group
        .map(|name| Group {
            name: name.to_owned(),
            kind: GroupType::Organization,
            lwia: None,
            members: partners
                .iter()
                .map(|p| Member::Email(p.email.clone()))
                .collect(),
        })
        .into_iter()
        .collect();
    Ok(RosterFile {
        version: 1,
        groups,
        partners,
        policy: None,
    })
}

/// Lines of the file, counted as `\n`, `\r\n` or a lone `\r` (old Mac
/// exports) ends one. The CSV reader counts only `\n`, and gives a record
/// the line where it started reading, before blank lines it skipped.
struct Lines<'a> {
    bytes: &'a [u8],
    /// Bytes before `at` are counted: `at` starts line `line`.
    at: usize,
    line: u64,
}

impl<'a> Lines<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Lines {
            bytes,
            at: 0,
            line: 1,
        }
    }

    /// The 1-based line of the first byte at or after `pos` that is not a
    /// line break: where the record really starts. Positions come in file
    /// order, so counting resumes where it stopped.
    fn of(&mut self, pos: &csv::Position) -> u64 {
        let b = self.bytes;
        let mut start = usize::try_from(pos.byte())
            .unwrap_or(usize::MAX)
            .min(b.len());
        while start < b.len() && matches!(b[start], b'\r' | b'\n') {
            start += 1;
        }
        if start < self.at {
            (self.at, self.line) = (0, 1);
        }
        for i in self.at..start {
            if b[i] == b'\n' || (b[i] == b'\r' && b.get(i + 1) != Some(&b'\n')) {
                self.line += 1;
            }
        }
        self.at = start;
        self.line
    }
}

/// A CSV reader error as (line, message); never holds cell values.
fn csv_error(lines: &mut Lines, e: &csv::Error) -> (u64, String) {
    let line = e.position().map_or(0, |p| lines.of(p));
    let message = match e.kind() {
        csv::ErrorKind::Utf8 { .. } => {
            "not valid UTF-8 text; save the file as UTF-8 (CSV UTF-8)".to_string()
        }
        csv::ErrorKind::Io(io) => format!("cannot read: {io}"),
        _ => "this line is not valid CSV".to_string(),
    };
    (line, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--group`: one organization holding every partner, in file order;
    /// optional columns left empty are no value.
    #[test]
    fn a_group_holds_every_imported_partner() {
        let csv = "Email,First Name,Last Name,Phone\nb@example.org,B,Bee,\na@example.org,A,Ay,217-555-0100\n";
        let file = import(csv.as_bytes(), Some("Lakeland")).unwrap();
        let emails: Vec<&str> = file.partners.iter().map(|p| p.email.as_str()).collect();
        assert_eq!(emails, ["b@example.org", "a@example.org"]);
        assert_eq!(file.partners[0].phone, None);
        assert_eq!(file.partners[1].phone.as_deref(), Some("217-555-0100"));
        assert_eq!(file.groups.len(), 1);
        assert_eq!(file.groups[0].name, "Lakeland");
        assert_eq!(file.groups[0].kind, GroupType::Organization);
        assert_eq!(file.groups[0].members.len(), 2);
        assert_eq!(template().split(',').next(), Some("first name"));
    }

    #[test]
    fn header_spellings() {
        for s in ["First Name", "first_name", "FIRST-NAME", " first  name "] {
            assert_eq!(header_key(s), "first name");
        }
    }

    #[test]
    fn a_duplicate_row_names_the_earlier_line() {
        let csv =
            "\n\r\nfirst name,last name,email\r\nA,B,a@example.org\n\r\n\nC,D,A@Example.org\n";
        assert_eq!(
            import(csv.as_bytes(), None).unwrap_err(),
            [(
                7,
                "email \"A@Example.org\" is already on line 4 (emails compare case-insensitively)"
                    .to_string()
            )]
        );
    }
}
