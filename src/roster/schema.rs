//! The JSON Schema of roster files: generated from the model, validated with
//! the `jsonschema` crate (the only file that names it), and its errors
//! mapped back to YAML positions with messages that say what to do.

use super::model::RosterFile;
use super::yaml::{Node, Pos, Value};
use crate::finding::{Code, Finding, did_you_mean};
use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{ValidationError, Validator};
use serde_json::Value as Json;
use std::sync::OnceLock;

/// The roster file schema, as checked in under `schemas/roster.schema.json`.
pub fn roster_schema() -> Json {
    let mut schema = serde_json::to_value(schemars::schema_for!(RosterFile)).unwrap_or(Json::Null);
    if let Some(obj) = schema.as_object_mut() {
        obj.insert(
            "$id".into(),
            Json::String("https://roster.dev/schemas/roster.schema.json".into()),
        );
    }
    schema
}

/// Pretty JSON with a trailing newline, as written to `schemas/`.
pub fn pretty(schema: &Json) -> String {
    let mut s = serde_json::to_string_pretty(schema).unwrap_or_default();
    s.push('\n');
    s
}

fn validator() -> &'static (Json, Option<Validator>) {
    static V: OnceLock<(Json, Option<Validator>)> = OnceLock::new();
    V.get_or_init(|| {
        let schema = roster_schema();
        let v = jsonschema::validator_for(&schema).ok();
        (schema, v)
    })
}

/// Fields whose values are personal data: never echoed in messages.
const PII_FIELDS: [&str; 4] = ["birth_date", "phone", "extension", "zip"];

/// Validate one file's JSON form; push findings positioned in `tree`.
pub fn validate(tree: &Node, json: &Json, file: &str, out: &mut Vec<Finding>) {
    let (schema, Some(validator)) = validator() else {
        out.push(Finding::error(
            Code::Internal,
            file,
            Pos::default(),
            "the built-in roster schema did not compile",
        ));
        return;
    };
    let mut seen = std::collections::HashSet::new();
    let mut found = Vec::new();
    for e in validator.iter_errors(json) {
        for f in map_error(&e, tree, schema, file) {
            if seen.insert((f.line, f.column, f.code, f.message.clone())) {
                found.push(f);
            }
        }
    }
    // `emial:` is reported once, as a typo of `email`, not also as a missing `email`.
    let typos: std::collections::HashSet<(u32, String)> = found
        .iter()
        .filter(|f| f.code == Code::UnknownField)
        .filter_map(|f| {
            let h = f.help.as_deref()?;
            let name = h.strip_prefix("did you mean `")?.strip_suffix("`?")?;
            Some((f.line, name.to_string()))
        })
        .collect();
    found.retain(|f| {
        f.code != Code::MissingField
            || !f.message.rsplit_once('`').is_some_and(|(rest, _)| {
                rest.rsplit_once('`')
                    .is_some_and(|(_, name)| typos.contains(&(f.line, name.to_string())))
            })
    });
    out.append(&mut found);
}

/// Whether the schema holds `tree` valid, decided on its shape: every item
/// of `groups` and `partners` is reduced to its shape (each text that no
/// keyword of the schema tells apart by more than being empty becomes `x`
/// or `""`, each integer in `0..=u32::MAX` becomes 0, each list keeps one
/// of each shape of item), the items of one shape are kept once, and the
/// document of those shapes is validated. That document is valid exactly
/// when the file is, because the schema of those items has no keyword that
/// tells apart what the reduction merges (see the test
/// `shapes_keep_what_the_schema_reads`); a large roster has a handful of
/// shapes, so this costs a walk of the tree instead of its JSON form and a
/// validation of it. `false`: validate the file itself, for its findings.
pub fn valid_by_shape(tree: &Node) -> bool {
    let (_, Some(validator)) = validator() else {
        return false;
    };
    let Value::Map(entries) = &tree.value else {
        return false;
    };
    let mut doc = serde_json::Map::new();
    let mut key = Vec::new();
    for (k, v) in entries {
        let value = match (k.value.as_str(), &v.value) {
            (Some("groups" | "partners"), Value::Seq(items)) => {
                let mut seen = std::collections::HashSet::new();
                let mut shapes = Vec::new();
                for item in items {
                    key.clear();
                    shape_key(item, false, &mut key);
                    if !seen.contains(key.as_slice()) {
                        seen.insert(key.clone());
                        shapes.push(shape(item, false));
                    }
                }
                Json::Array(shapes)
            }
            _ => v.to_json(),
        };
        doc.insert(k.key_text(), value);
    }
    validator.is_valid(&Json::Object(doc))
}

/// Keys of group and partner fields whose text the schema reads beyond its
/// emptiness (enums): kept as written in a shape.
const SHAPE_VERBATIM: [&str; 2] = ["type", "sign_in"];

/// The reduced form of `node` (see [`valid_by_shape`]).
fn shape(node: &Node, verbatim: bool) -> Json {
    match &node.value {
        Value::Str(s) if !verbatim => Json::String(if s.is_empty() { "" } else { "x" }.into()),
        Value::Int(i) if !verbatim && (0..=i64::from(u32::MAX)).contains(i) => Json::from(0),
        Value::Seq(items) => {
            let mut out: Vec<Json> = Vec::new();
            for item in items {
                let s = shape(item, verbatim);
                if !out.contains(&s) {
                    out.push(s);
                }
            }
            Json::Array(out)
        }
        Value::Map(entries) => Json::Object(
            entries
                .iter()
                .map(|(k, v)| {
                    let keep = verbatim
                        || k.value
                            .as_str()
                            .is_some_and(|k| SHAPE_VERBATIM.contains(&k));
                    (k.key_text(), shape(v, keep))
                })
                .collect(),
        ),
        _ => node.to_json(),
    }
}

/// A byte string that two nodes share exactly when their [`shape`]s are equal
/// (compared without building them).
fn shape_key(node: &Node, verbatim: bool, out: &mut Vec<u8>) {
    fn text(s: &str, out: &mut Vec<u8>) {
        out.extend_from_slice(&(s.len() as u64).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    }
    match &node.value {
        Value::Null => out.push(b'n'),
        Value::Bool(b) => out.push(if *b { b't' } else { b'f' }),
        Value::Int(i) if !verbatim && (0..=i64::from(u32::MAX)).contains(i) => out.push(b'0'),
        Value::Int(i) => {
            out.push(b'i');
            out.extend_from_slice(&i.to_le_bytes());
        }
        Value::Float(f) => {
            out.push(b'd');
            out.extend_from_slice(&f.to_bits().to_le_bytes());
        }
        Value::Str(s) if !verbatim => out.push(if s.is_empty() { b'e' } else { b'x' }),
        Value::Str(s) => {
            out.push(b's');
            text(s, out);
        }
        Value::Seq(items) => {
            out.push(b'[');
            // Each shape of item once, in the order first seen.
            let mut kept: Vec<(usize, usize)> = Vec::new();
            for item in items {
                let start = out.len();
                shape_key(item, verbatim, out);
                let new = &out[start..];
                if kept.iter().any(|&(a, b)| out[a..b] == *new) {
                    out.truncate(start);
                } else {
                    kept.push((start, out.len()));
                }
            }
            out.push(b']');
        }
        Value::Map(entries) => {
            out.push(b'{');
            for (k, v) in entries {
                out.push(b'k');
                match &k.value {
                    Value::Str(s) => text(s, out),
                    _ => text(&k.key_text(), out),
                }
                let keep = verbatim
                    || k.value
                        .as_str()
                        .is_some_and(|k| SHAPE_VERBATIM.contains(&k));
                shape_key(v, keep, out);
            }
            out.push(b'}');
        }
    }
}

fn segments(pointer: &str) -> Vec<String> {
    pointer
        .split('/')
        .skip(1)
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect()
}

/// What the user calls the object at a path.
fn noun(path: &[String]) -> &'static str {
    let p: Vec<&str> = path
        .iter()
        .map(|s| {
            if s.parse::<usize>().is_ok() {
                "#"
            } else {
                s.as_str()
            }
        })
        .collect();
    match p.as_slice() {
        [] => "the top level of a roster file (version, groups, partners, policy)",
        ["groups", "#"] => "a group",
        ["groups", "#", "members", "#"] => "a member entry",
        ["partners", "#"] => "a partner",
        ["policy"] => "the policy",
        ["policy", "email_domains"] => "policy.email_domains",
        ["policy", "restrictions", "#"] => "a restriction",
        _ => "this mapping",
    }
}

/// The field name a path ends in (`groups/0/members` → `members`).
fn field(path: &[String]) -> String {
    let last_named = path.iter().rev().find(|s| s.parse::<usize>().is_err());
    match (path.last(), last_named) {
        (Some(l), Some(n)) if l.parse::<usize>().is_ok() => format!("each item of `{n}`"),
        (_, Some(n)) => format!("`{n}`"),
        _ => "a roster file".into(),
    }
}

fn type_words(kind: &TypeKind) -> String {
    let one = |t: &str| match t {
        "object" => "a mapping",
        "array" => "a list",
        "boolean" => "true or false",
        "string" => "a string",
        "integer" => "a whole number",
        "number" => "a number",
        "null" => "empty",
        _ => "another type",
    };
    match kind {
        TypeKind::Single(t) => one(&t.to_string()).to_string(),
        TypeKind::Multiple(set) => {
            let words: Vec<&str> = set
                .iter()
                .map(|t| t.to_string())
                .filter(|t| t != "null")
                .map(|t| one(&t))
                .collect();
            words.join(" or ")
        }
    }
}

fn found(node: Option<&Node>, path: &[String]) -> String {
    let Some(node) = node else {
        return String::new();
    };
    let pii = path.iter().any(|s| PII_FIELDS.contains(&s.as_str()));
    match &node.value {
        Value::Str(s) if !pii && s.chars().count() <= 40 => format!(", found \"{s}\""),
        Value::Bool(b) if !pii => format!(", found {b}"),
        Value::Int(i) if !pii => format!(", found {i}"),
        v => format!(", found {}", v.kind()),
    }
}

fn schema_at<'a>(schema: &'a Json, pointer: &str) -> Option<&'a Json> {
    schema.pointer(pointer)
}

fn map_error(e: &ValidationError, tree: &Node, schema: &Json, file: &str) -> Vec<Finding> {
    let path = segments(e.instance_path().as_str());
    let node = tree.at(path.iter());
    let pos = node.map_or(Pos::default(), |n| n.pos);
    let at = |code, msg: String| Finding::error(code, file, pos, msg);
    match e.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let schema_path = e.schema_path().as_str();
            let parent = schema_path
                .strip_suffix("/additionalProperties")
                .unwrap_or("");
            let allowed: Vec<&str> = schema_at(schema, parent)
                .and_then(|s| s.get("properties"))
                .and_then(Json::as_object)
                .map(|m| m.keys().map(String::as_str).collect())
                .unwrap_or_default();
            unexpected
                .iter()
                .map(|key| {
                    let kpos = node.and_then(|n| n.entry(key)).map_or(pos, |(k, _)| k.pos);
                    let f = Finding::error(
                        Code::UnknownField,
                        file,
                        kpos,
                        format!("unknown field `{key}` in {}", noun(&path)),
                    )
                    .span_len(key.len());
                    match did_you_mean(key, allowed.iter().copied()) {
                        Some(m) => f.help(format!("did you mean `{m}`?")),
                        None => f.help(format!("allowed fields: {}", allowed.join(", "))),
                    }
                })
                .collect()
        }
        ValidationErrorKind::Required { property } => {
            let prop = property.as_str().unwrap_or_default();
            if path.is_empty() && prop == "version" {
                return vec![
                    Finding::error(
                        Code::MissingVersion,
                        file,
                        Pos {
                            line: 1,
                            column: 1,
                            offset: 0,
                        },
                        "missing `version: 1`",
                    )
                    .help("start every roster file with the line `version: 1`"),
                ];
            }
            vec![
                at(
                    Code::MissingField,
                    format!("{} is missing `{prop}`", noun(&path)),
                )
                .help(format!("add `{prop}:` to it")),
            ]
        }
        ValidationErrorKind::Type { kind } => {
            let expected = type_words(kind);
            let mut f = at(
                Code::WrongType,
                format!("{} must be {expected}{}", field(&path), found(node, &path)),
            );
            let is_scalar_str = matches!(kind, TypeKind::Single(t) if t.to_string() == "string")
                || matches!(kind, TypeKind::Multiple(s) if s.iter().any(|t| t.to_string() == "string"));
            if is_scalar_str
                && node.is_some_and(|n| {
                    matches!(n.value, Value::Int(_) | Value::Float(_) | Value::Bool(_))
                })
            {
                f = f.help("put the value in quotes");
            } else if expected == "true or false" {
                f = f.help("write true or false");
            }
            vec![f]
        }
        ValidationErrorKind::Constant { expected_value } => {
            if path == ["version"] {
                vec![
                    at(
                        Code::UnsupportedVersion,
                        format!("unsupported roster version{}", found(node, &path)),
                    )
                    .help("this roster understands `version: 1`"),
                ]
            } else {
                vec![at(
                    Code::InvalidValue,
                    format!("{} must be {expected_value}", field(&path)),
                )]
            }
        }
        ValidationErrorKind::Enum { options } => {
            let opts: Vec<&str> = options
                .as_array()
                .map(|a| a.iter().filter_map(Json::as_str).collect())
                .unwrap_or_default();
            let opts: Vec<String> = opts.into_iter().map(str::to_owned).collect();
            vec![enum_finding(&opts, node, &path, pos, file)]
        }
        ValidationErrorKind::MinLength { .. } => {
            vec![at(
                Code::EmptyValue,
                format!("{} must not be empty", field(&path)),
            )]
        }
        ValidationErrorKind::Minimum { limit } | ValidationErrorKind::Maximum { limit } => {
            vec![at(
                Code::InvalidValue,
                format!(
                    "{} is out of range (limit {limit}){}",
                    field(&path),
                    found(node, &path)
                ),
            )]
        }
        ValidationErrorKind::Pattern { .. } => vec![at(
            Code::InvalidValue,
            format!("{} has the wrong form{}", field(&path), found(node, &path)),
        )],
        ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } => {
            let here = e.instance_path().as_str();
            // An enum written as one constant per branch (documented variants).
            let consts: Option<Vec<String>> = context
                .iter()
                .map(|branch| match branch.as_slice() {
                    [b] if b.instance_path().as_str() == here => match b.kind() {
                        ValidationErrorKind::Constant { expected_value } => {
                            expected_value.as_str().map(str::to_owned)
                        }
                        _ => None,
                    },
                    _ => None,
                })
                .collect();
            if let Some(opts) = consts.filter(|o| !o.is_empty()) {
                return vec![enum_finding(&opts, node, &path, pos, file)];
            }
            // Report the branch the user evidently meant: one whose type matched.
            let meant = context
                .iter()
                .filter(|branch| {
                    !branch.iter().any(|b| {
                        b.instance_path().as_str() == here
                            && matches!(b.kind(), ValidationErrorKind::Type { .. })
                    })
                })
                .min_by_key(|branch| branch.len());
            if let Some(branch) = meant {
                return branch
                    .iter()
                    .flat_map(|b| map_error(b, tree, schema, file))
                    .collect();
            }
            let expected: Vec<String> = context
                .iter()
                .flatten()
                .filter_map(|b| match b.kind() {
                    ValidationErrorKind::Type { kind } => Some(type_words(kind)),
                    _ => None,
                })
                .collect();
            let mut f = at(
                Code::WrongType,
                format!(
                    "{} must be {}{}",
                    field(&path),
                    expected.join(" or "),
                    found(node, &path)
                ),
            );
            if path.first().map(String::as_str) == Some("groups")
                && path.get(2).map(String::as_str) == Some("members")
            {
                f = f.help("write a member as an email, or as `{ email: …, user_manager: true }`");
            }
            vec![f]
        }
        _ => vec![at(Code::Schema, format!("{}: {e}", field(&path)))],
    }
}

fn enum_finding(
    opts: &[String],
    node: Option<&Node>,
    path: &[String],
    pos: Pos,
    file: &str,
) -> Finding {
    let mut f = Finding::error(
        Code::InvalidValue,
        file,
        pos,
        format!(
            "{} must be one of: {}{}",
            field(path),
            opts.join(", "),
            found(node, path).replacen(", ", "; ", 1)
        ),
    );
    if let Some(s) = node.and_then(|n| n.value.as_str())
        && let Some(m) = did_you_mean(s, opts.iter().map(String::as_str))
    {
        f = f.help(format!("did you mean `{m}`?"));
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[test]
    fn schema_compiles() {
        assert!(validator().1.is_some());
    }

    /// The reduction of [`valid_by_shape`] merges texts of one emptiness,
    /// small integers, and list items of one shape: sound only while the
    /// schema of groups and partners reads nothing that tells those apart.
    #[test]
    fn shapes_keep_what_the_schema_reads() {
        fn walk(schema: &Json, node: &Json, verbatim: bool, seen: &mut Vec<String>) {
            let Some(obj) = node.as_object() else {
                return;
            };
            for (k, v) in obj {
                match k.as_str() {
                    "description" | "title" | "default" | "type" | "required" | "format" => {}
                    "minLength" => assert!(v.as_u64().is_some_and(|n| n <= 1), "minLength {v}"),
                    "minimum" => assert_eq!(v.as_u64(), Some(0), "minimum {v}"),
                    "enum" | "const" => assert!(verbatim, "{k} {v} on a reduced value"),
                    "$ref" => {
                        let r = v.as_str().unwrap();
                        if !seen.iter().any(|s| s == r) {
                            seen.push(r.to_string());
                            let target = schema.pointer(r.trim_start_matches('#')).unwrap();
                            walk(schema, target, verbatim, seen);
                            seen.pop();
                        }
                    }
                    "items" | "additionalProperties" => walk(schema, v, verbatim, seen),
                    "anyOf" | "oneOf" => {
                        for s in v.as_array().unwrap() {
                            walk(schema, s, verbatim, seen);
                        }
                    }
                    "properties" => {
                        for (name, s) in v.as_object().unwrap() {
                            let keep = verbatim || SHAPE_VERBATIM.contains(&name.as_str());
                            walk(schema, s, keep, seen);
                        }
                    }
                    other => panic!("keyword `{other}` ({v}) in a group's or partner's schema"),
                }
            }
        }
        let schema = roster_schema();
        for list in ["groups", "partners"] {
            let items = &schema["properties"][list];
            assert_eq!(items["type"], "array");
            walk(&schema, &items["items"], false, &mut Vec::new());
        }
    }

    fn findings(text: &str) -> (bool, usize) {
        let tree = crate::roster::yaml::parse(text).unwrap();
        let mut found = Vec::new();
        validate(&tree, &tree.to_json(), "f.yaml", &mut found);
        (valid_by_shape(&tree), found.len())
    }

    /// On every roster and fixture of the repository, a file is valid by
    /// its shape exactly when validating it finds nothing.
    #[test]
    fn valid_by_shape_agrees_on_the_repository_files() {
        fn collect(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    collect(&p, out);
                } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
                    out.push(p);
                }
            }
        }
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = Vec::new();
        for dir in ["examples", "tests", "fuzz", "benches"] {
            collect(&root.join(dir), &mut files);
        }
        let (mut valid, mut invalid) = (0, 0);
        for path in files {
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let Ok(tree) = crate::roster::yaml::parse(&text) else {
                continue;
            };
            let mut found = Vec::new();
            validate(&tree, &tree.to_json(), "f.yaml", &mut found);
            assert_eq!(
                valid_by_shape(&tree),
                found.is_empty(),
                "{}",
                path.display()
            );
            *if found.is_empty() {
                &mut valid
            } else {
                &mut invalid
            } += 1;
        }
        assert!(valid > 10, "{valid} valid, {invalid} invalid files");
    }

    /// A file is valid by its shape exactly when validating it finds nothing.
    #[test]
    fn valid_by_shape_agrees_with_validation() {
        // A partner with `field: value` set (added, or in place of the default).
        let partner = |field: &str, value: &str| {
            let mut fields = vec![
                ("email", "a@b.org"),
                ("first_name", "A"),
                ("last_name", "B"),
                ("roles", "[x, y]"),
            ];
            match fields.iter_mut().find(|(k, _)| *k == field) {
                Some(f) => f.1 = value,
                None if field.is_empty() => {}
                None => fields.push((field, value)),
            }
            let body: Vec<String> = fields.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            format!("  - {}\n", body.join("\n    "))
        };
        let many: String = (0..50).map(|_| partner("", "")).collect();
        let cases = [
            ("", "", true),
            ("sign_in", "sso", true),
            ("sign_in", "ssh", false),
            ("first_name", "\"\"", false),
            ("account", "\"\"", false),
            ("emial", "a@b.org", false),
            ("roles", "[x, 1]", false),
            ("zip", "62568", false),
            ("entitlements", "{products: [a, b], dashboards: x}", false),
            ("entitlements", "{products: [a, b], dashboards: []}", true),
        ];
        for (field, value, valid) in cases {
            // The odd partner once among many plain ones: still found.
            let one = partner(field, value);
            let text = format!("version: 1\npartners:\n{many}{one}{many}");
            let (by_shape, n) = findings(&text);
            assert_eq!((by_shape, n == 0), (valid, valid), "{field}: {value}");
        }
        let groups = [
            ("    lwia: 3\n", true),
            ("    lwia: -3\n", false),
            ("    lwia: 1.5\n", false),
            ("    type: project\n", true),
            ("    type: projects\n", false),
            (
                "    members: [a@b.org, {email: c@b.org, user_manager: true}]\n",
                true,
            ),
            (
                "    members: [a@b.org, {email: c@b.org, user_manager: 1}]\n",
                false,
            ),
            ("    members: [a@b.org, {mail: c@b.org}]\n", false),
            ("    name: \"\"\n", false),
        ];
        for (extra, valid) in groups {
            let first = if extra.contains("name:") {
                "lwia: 1"
            } else {
                "name: B"
            };
            let text = format!(
                "version: 1\ngroups:\n  - name: A\n    members: [a@b.org, a@b.org]\n  - {first}\n{extra}"
            );
            let (by_shape, n) = findings(&text);
            assert_eq!((by_shape, n == 0), (valid, valid), "{extra}");
        }
    }

    /// Every roster and fixture of the repository reads the same from the
    /// tree as from its JSON form (or the tree read fails, and the caller
    /// takes the JSON route).
    #[test]
    fn reads_what_the_json_route_reads() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = Vec::new();
        for dir in ["examples", "tests", "fuzz", "benches"] {
            collect_rosters(&root.join(dir), &mut files);
        }
        let mut compared = 0;
        for path in files {
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let Ok(tree) =
                crate::roster::yaml::parse(text.strip_prefix('\u{feff}').unwrap_or(&text))
            else {
                continue;
            };
            let json = tree.to_json();
            let from_json = RosterFile::deserialize(&json);
            if let Ok(from_tree) = RosterFile::deserialize(&tree) {
                assert_eq!(
                    from_json.ok().as_ref(),
                    Some(&from_tree),
                    "{}",
                    path.display()
                );
                compared += 1;
            }
        }
        assert!(compared > 10, "only {compared} roster files compared");
    }

    fn collect_rosters(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                collect_rosters(&p, out);
            } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
                out.push(p);
            }
        }
    }

    /// Values a file may hold where the model has a looser or stricter
    /// type: the tree read agrees with the JSON route, or refuses.
    #[test]
    fn agrees_on_odd_values() {
        let texts = [
            "version: 1\ngroups:\n  - name: A\n    lwia: -3\n",
            "version: 1\ngroups:\n  - name: A\n    lwia: 4294967296\n",
            "version: 1\ngroups:\n  - name: A\n    lwia: 1.5\n    type: project\n",
            "version: 1\ngroups:\n  - name: A\n    type: {project: 1}\n",
            "version: 1\npartners:\n  - email: a@b.org\n    first_name: A\n    last_name: B\n    zip: .nan\n",
            "version: 1\npartners:\n  - email: a@b.org\n    first_name: A\n    last_name: B\n    zip: 62568\n",
            "version: 1\npartners:\n  - email: a@b.org\n    first_name: A\n    last_name: B\n    entitlements: {1: [x], true: [y]}\n",
            "version: 1\npartners:\n  - [a@b.org, A, B]\n",
            "version: 1\npolicy:\n  max_removals: 10%\n  sign_in: sso\n",
            "version: 1\npolicy:\n  max_removals: 7\n  entitlements: {coverage: groups, products: [a, b]}\n",
            "version: 1\nextra: 1\n",
        ];
        for text in texts {
            let tree = crate::roster::yaml::parse(text).unwrap();
            let from_json = RosterFile::deserialize(&tree.to_json());
            if let Ok(from_tree) = RosterFile::deserialize(&tree) {
                assert_eq!(from_json.ok(), Some(from_tree), "{text}");
            }
        }
    }
}
