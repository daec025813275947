//! Attribute paths, PATCH operations (RFC 7644 §3.5.2) and the
//! `attributes`/`excludedAttributes` projection, all on a resource's JSON.
//! A patched resource is then stored like a replaced one, so PATCH and PUT
//! share every rule about what may change.

use super::error::ScimError;
use crate::scim::excerpt;
use crate::scim::filter::{self, CompareOp, Filter};
use crate::scim::resource::{EXT_ENTERPRISE, EXT_GROUP, EXT_USER, GROUP, PATCH_OP, USER};
use serde_json::{Map, Value};

/// `[URN:]attr[.sub]` or `[URN:]attr[filter][.sub]`.
#[derive(Debug)]
pub struct Path {
    /// The extension holding the attribute; `None` for the core schema.
    pub ext: Option<&'static str>,
    /// Empty when the path names the whole extension.
    pub attr: String,
    pub filter: Option<Filter>,
    pub sub: Option<String>,
}

const MULTI: &[&str] = &[
    "emails",
    "phoneNumbers",
    "roles",
    "entitlements",
    "members",
    "groups",
    "userManagers",
];

/// Attribute names as roster writes them (names compare case-insensitively).
const NAMES: &[&str] = &[
    "userName",
    "name",
    "givenName",
    "familyName",
    "emails",
    "phoneNumbers",
    "active",
    "roles",
    "entitlements",
    "manager",
    "groups",
    "displayName",
    "members",
    "birthDate",
    "postalCode",
    "phoneExtension",
    "type",
    "lwia",
    "userManagers",
    "value",
    "display",
    "primary",
    "password",
    "id",
    "schemas",
    "meta",
    "$ref",
    "externalId",
];

fn canon(name: &str) -> String {
    NAMES
        .iter()
        .find(|n| n.eq_ignore_ascii_case(name))
        .map(|n| n.to_string())
        .unwrap_or_else(|| name.to_string())
}

/// Mutability of one attribute or sub-attribute, as the served schemas say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mutability {
    ReadOnly,
    Writable,
}

/// Per schema URN: its attributes, each with its mutability and
/// sub-attributes. Read from the schema documents `/Schemas` serves, so the
/// attributes PATCH accepts are exactly the ones roster publishes.
type Attributes = Vec<(String, Mutability, Vec<(String, Mutability)>)>;

fn schemas() -> &'static [(String, Attributes)] {
    static SCHEMAS: std::sync::LazyLock<Vec<(String, Attributes)>> =
        std::sync::LazyLock::new(|| {
            let mutability = |v: &Value| match v["mutability"].as_str() {
                Some("readOnly") => Mutability::ReadOnly,
                _ => Mutability::Writable,
            };
            let name = |v: &Value| v["name"].as_str().unwrap_or_default().to_string();
            [
                crate::scim::resource::CORE_JSON,
                crate::scim::resource::EXTENSIONS_JSON,
                crate::scim::resource::ENTERPRISE_JSON,
            ]
            .iter()
            .filter_map(|text| serde_json::from_str::<Vec<Value>>(text).ok())
            .flatten()
            .map(|schema| {
                let attrs = schema["attributes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|a| {
                        let subs = a["subAttributes"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|s| (name(s), mutability(s)))
                            .collect();
                        (name(a), mutability(a), subs)
                    })
                    .collect();
                (schema["id"].as_str().unwrap_or_default().to_string(), attrs)
            })
            .collect()
        });
    &SCHEMAS
}

/// Refuse a path naming an attribute the resource does not have
/// (`invalidPath`) or one a client may not change (`mutability`). `core` is
/// the resource's core schema ([`USER`] or [`GROUP`]).
fn check_target(core: &str, text: &str, path: &Path) -> Result<(), ScimError> {
    let ext = if core == USER { EXT_USER } else { EXT_GROUP };
    let kind = if core == USER { "Users" } else { "Groups" };
    let schema = match path.ext {
        Some(EXT_ENTERPRISE) if core == USER => EXT_ENTERPRISE,
        Some(e) if e != ext => {
            return Err(invalid_path(text, &format!("not a schema of {kind}")));
        }
        Some(e) => e,
        None => core,
    };
    if path.attr.is_empty() {
        return Ok(());
    }
    let read_only = || {
        ScimError::bad(
            "mutability",
            format!("path `{}`: the attribute is read-only", excerpt(text)),
        )
    };
    if path.ext.is_none() {
        // Common attributes (RFC 7643 §3.1).
        match path.attr.as_str() {
            "id" | "meta" => return Err(read_only()),
            "externalId" | "schemas" if path.sub.is_none() => return Ok(()),
            _ => {}
        }
    }
    let unknown = || invalid_path(text, &format!("no such attribute of {kind}"));
    let (_, attrs) = schemas()
        .iter()
        .find(|(id, _)| id == schema)
        .ok_or_else(unknown)?;
    let (_, m, subs) = attrs
        .iter()
        .find(|(n, _, _)| n.eq_ignore_ascii_case(&path.attr))
        .ok_or_else(unknown)?;
    if *m == Mutability::ReadOnly {
        return Err(read_only());
    }
    if let Some(sub) = &path.sub {
        let (_, m) = subs
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(sub))
            .ok_or_else(unknown)?;
        if *m == Mutability::ReadOnly {
            return Err(read_only());
        }
    }
    Ok(())
}

/// The core schema of a resource's JSON: [`GROUP`] if it lists it, else [`USER`].
fn core_of(v: &Value) -> &'static str {
    let is_group = v["schemas"].as_array().is_some_and(|s| {
        s.iter()
            .any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(GROUP)))
    });
    if is_group { GROUP } else { USER }
}

fn invalid_path(p: &str, why: &str) -> ScimError {
    ScimError::bad("invalidPath", format!("path `{}`: {why}", excerpt(p)))
}

pub fn parse_path(p: &str) -> Result<Path, ScimError> {
    let mut rest = p.trim();
    let mut ext = None;
    if rest
        .get(..4)
        .is_some_and(|h| h.eq_ignore_ascii_case("urn:"))
    {
        let schema_end = rest.find('[').unwrap_or(rest.len());
        let head = &rest[..schema_end];
        // The schema URN is all up to the last `:` before the attribute.
        let (urn, attr) = if [EXT_USER, EXT_GROUP, EXT_ENTERPRISE, USER, GROUP]
            .iter()
            .any(|u| u.eq_ignore_ascii_case(head))
        {
            (head, "")
        } else {
            let colon = head
                .rfind(':')
                .ok_or_else(|| invalid_path(p, "no attribute after the schema URN"))?;
            (&head[..colon], &rest[colon + 1..])
        };
        ext = [EXT_USER, EXT_GROUP, EXT_ENTERPRISE]
            .into_iter()
            .find(|u| u.eq_ignore_ascii_case(urn));
        if ext.is_none() && ![USER, GROUP].iter().any(|u| u.eq_ignore_ascii_case(urn)) {
            return Err(invalid_path(
                p,
                &format!("unknown schema `{}`", excerpt(urn)),
            ));
        }
        rest = attr;
        if rest.is_empty() {
            return Ok(Path {
                ext,
                attr: String::new(),
                filter: None,
                sub: None,
            });
        }
    }
    let (attr, filter, after) = match rest.find('[') {
        Some(open) => {
            let close = rest
                .rfind(']')
                .ok_or_else(|| invalid_path(p, "`[` without `]`"))?;
            if close < open {
                return Err(invalid_path(p, "`]` before `[`"));
            }
            let f = filter::parse(&rest[open + 1..close])
                .map_err(|e| invalid_path(p, &e.to_string()))?;
            (&rest[..open], Some(f), &rest[close + 1..])
        }
        None => match rest.find('.') {
            Some(dot) => (&rest[..dot], None, &rest[dot..]),
            None => (rest, None, ""),
        },
    };
    let sub = match after {
        "" => None,
        s => Some(
            s.strip_prefix('.')
                .filter(|s| !s.is_empty() && !s.contains('.'))
                .ok_or_else(|| invalid_path(p, "expected `.subAttribute`"))?,
        ),
    };
    let valid = |s: &str| {
        s.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '$')
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_$".contains(c))
    };
    if !valid(attr) || sub.is_some_and(|s| !valid(s)) {
        return Err(invalid_path(p, "not an attribute name"));
    }
    Ok(Path {
        ext,
        attr: canon(attr),
        filter,
        sub: sub.map(canon),
    })
}

/// The key of `name` in `obj`, compared case-insensitively.
fn key_of(obj: &Map<String, Value>, name: &str) -> String {
    obj.keys()
        .find(|k| k.eq_ignore_ascii_case(name))
        .cloned()
        .unwrap_or_else(|| canon(name))
}

fn get_ci<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    v.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// The object holding the path's attribute, created if missing.
fn container<'a>(
    v: &'a mut Value,
    ext: Option<&str>,
) -> Result<&'a mut Map<String, Value>, ScimError> {
    let top = v
        .as_object_mut()
        .ok_or_else(|| ScimError::bad("invalidValue", "the resource is not an object"))?;
    match ext {
        None => Ok(top),
        Some(urn) => {
            let key = key_of(top, urn);
            let slot = top.entry(key).or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            slot.as_object_mut()
                .ok_or_else(|| ScimError::bad("invalidValue", "extension is not an object"))
        }
    }
}

/// Whether an element of a multi-valued attribute matches a value filter.
pub fn matches(f: &Filter, elem: &Value) -> bool {
    match f {
        Filter::And(a, b) => matches(a, elem) && matches(b, elem),
        Filter::Or(a, b) => matches(a, elem) || matches(b, elem),
        Filter::Not(a) => !matches(a, elem),
        Filter::Present(p) => lookup(elem, &p.attr, p.sub.as_deref())
            .is_some_and(|v| !v.is_null() && v != "" && v != &Value::Array(vec![])),
        Filter::Compare(p, op, want) => {
            let have = lookup(elem, &p.attr, p.sub.as_deref());
            compare(have, *op, want)
        }
        Filter::ValuePath(..) => false,
    }
}

fn lookup<'a>(elem: &'a Value, attr: &str, sub: Option<&str>) -> Option<&'a Value> {
    let v = get_ci(elem, attr)?;
    match sub {
        Some(s) => get_ci(v, s),
        None => Some(v),
    }
}

fn compare(have: Option<&Value>, op: CompareOp, want: &filter::Value) -> bool {
    use filter::Value as F;
    let have = have.filter(|v| !v.is_null());
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.to_lowercase()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    match (have, want) {
        (None, F::Null) => matches!(op, CompareOp::Eq),
        (None, _) => matches!(op, CompareOp::Ne),
        (Some(_), F::Null) => matches!(op, CompareOp::Ne),
        (Some(Value::Bool(h)), F::Bool(w)) => match op {
            CompareOp::Eq => h == w,
            CompareOp::Ne => h != w,
            _ => false,
        },
        (Some(h), F::Num(w)) => {
            let h = h
                .as_f64()
                .or_else(|| h.as_str().and_then(|s| s.parse().ok()));
            let w = w.as_f64();
            match (h, w) {
                (Some(h), Some(w)) => ordered(h.partial_cmp(&w), op),
                _ => matches!(op, CompareOp::Ne),
            }
        }
        (Some(h), F::Str(w)) => {
            let Some(h) = text(h) else {
                return matches!(op, CompareOp::Ne);
            };
            let w = w.to_lowercase();
            match op {
                CompareOp::Co => h.contains(&w),
                CompareOp::Sw => h.starts_with(&w),
                CompareOp::Ew => h.ends_with(&w),
                _ => ordered(Some(h.cmp(&w)), op),
            }
        }
        (Some(_), F::Bool(_)) => matches!(op, CompareOp::Ne),
    }
}

fn ordered(o: Option<std::cmp::Ordering>, op: CompareOp) -> bool {
    use std::cmp::Ordering::*;
    match (o, op) {
        (Some(Equal), CompareOp::Eq | CompareOp::Ge | CompareOp::Le) => true,
        (Some(o), CompareOp::Ne) => o != Equal,
        (Some(Greater), CompareOp::Gt | CompareOp::Ge) => true,
        (Some(Less), CompareOp::Lt | CompareOp::Le) => true,
        (None, CompareOp::Ne) => true,
        _ => false,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Add,
    Replace,
    Remove,
}

pub struct Operation {
    pub op: Op,
    pub path: Option<(String, Path)>,
    pub value: Option<Value>,
}

/// Read a PatchOp request body.
pub fn operations(body: &Value) -> Result<Vec<Operation>, ScimError> {
    let schemas_ok = body
        .get("schemas")
        .and_then(Value::as_array)
        .is_some_and(|s| {
            s.iter()
                .any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(PATCH_OP)))
        });
    if !schemas_ok {
        return Err(ScimError::bad(
            "invalidSyntax",
            format!("a PATCH body lists the schema {PATCH_OP}"),
        ));
    }
    let ops = get_ci(body, "Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| ScimError::bad("invalidSyntax", "a PATCH body has an `Operations` array"))?;
    ops.iter()
        .enumerate()
        .map(|(i, o)| {
            let n = i + 1;
            let op = match get_ci(o, "op")
                .and_then(Value::as_str)
                .map(str::to_ascii_lowercase)
                .as_deref()
            {
                Some("add") => Op::Add,
                Some("replace") => Op::Replace,
                Some("remove") => Op::Remove,
                other => {
                    return Err(ScimError::bad(
                        "invalidSyntax",
                        format!(
                            "operation {n}: `op` must be add, replace or remove, not {:?}",
                            other.map(excerpt)
                        ),
                    ));
                }
            };
            let path = match get_ci(o, "path").and_then(Value::as_str) {
                Some(p) if !p.trim().is_empty() => Some((p.to_string(), parse_path(p)?)),
                _ => None,
            };
            let value = get_ci(o, "value").cloned();
            if op == Op::Remove && path.is_none() {
                return Err(ScimError::bad(
                    "noTarget",
                    format!("operation {n}: remove needs a `path`"),
                ));
            }
            if op != Op::Remove && value.is_none() {
                return Err(ScimError::bad(
                    "invalidValue",
                    format!("operation {n}: {op:?} needs a `value`"),
                ));
            }
            Ok(Operation { op, path, value })
        })
        .collect()
}

/// Apply the operations in order to a resource's JSON.
pub fn apply(v: &mut Value, ops: &[Operation]) -> Result<(), ScimError> {
    let core = core_of(v);
    for o in ops {
        match &o.path {
            Some((text, path)) => {
                check_target(core, text, path)?;
                apply_one(v, o.op, text, path, o.value.clone())?
            }
            None => {
                let Some(Value::Object(items)) = &o.value else {
                    return Err(ScimError::bad(
                        "invalidValue",
                        "an operation without `path` needs an object `value`",
                    ));
                };
                for (k, val) in items {
                    let is_ext = [EXT_USER, EXT_GROUP, EXT_ENTERPRISE]
                        .iter()
                        .find(|u| u.eq_ignore_ascii_case(k));
                    match (is_ext, val) {
                        (Some(urn), Value::Object(inner)) => {
                            for (k2, v2) in inner {
                                let text = format!("{urn}:{k2}");
                                let path = parse_path(&text)?;
                                check_target(core, &text, &path)?;
                                apply_one(v, o.op, &text, &path, Some(v2.clone()))?;
                            }
                        }
                        _ if k.eq_ignore_ascii_case("schemas") => {}
                        _ => {
                            let path = parse_path(k)?;
                            check_target(core, k, &path)?;
                            apply_one(v, o.op, k, &path, Some(val.clone()))?
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

fn is_multi(attr: &str) -> bool {
    MULTI.iter().any(|m| m.eq_ignore_ascii_case(attr))
}

fn no_target(path: &str) -> ScimError {
    ScimError::bad(
        "noTarget",
        format!("path `{}` matches no value", excerpt(path)),
    )
}

/// Merge `value` into `slot` (objects: per key; otherwise replace).
fn merge(slot: &mut Value, value: Value) {
    match (slot, value) {
        (Value::Object(s), Value::Object(v)) => {
            for (k, val) in v {
                let key = key_of(s, &k);
                s.insert(key, val);
            }
        }
        (slot, value) => *slot = value,
    }
}

fn same_value(a: &Value, b: &Value) -> bool {
    match (get_ci(a, "value"), get_ci(b, "value")) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn apply_one(
    v: &mut Value,
    op: Op,
    text: &str,
    path: &Path,
    value: Option<Value>,
) -> Result<(), ScimError> {
    let obj = container(v, path.ext)?;
    if path.attr.is_empty() {
        // The whole extension.
        return match (op, value) {
            (Op::Remove, _) => {
                obj.clear();
                Ok(())
            }
            (_, Some(Value::Object(items))) => {
                for (k, val) in items {
                    let key = key_of(obj, &k);
                    obj.insert(key, val);
                }
                Ok(())
            }
            _ => Err(ScimError::bad(
                "invalidValue",
                format!("path `{}` needs an object value", excerpt(text)),
            )),
        };
    }
    let key = key_of(obj, &path.attr);
    if let Some(f) = &path.filter {
        let Some(Value::Array(items)) = obj.get_mut(&key) else {
            return Err(no_target(text));
        };
        let hits: Vec<usize> = (0..items.len())
            .filter(|i| matches(f, &items[*i]))
            .collect();
        if hits.is_empty() {
            return Err(no_target(text));
        }
        match (op, &path.sub) {
            (Op::Remove, None) => {
                let mut i = 0;
                items.retain(|_| {
                    i += 1;
                    !hits.contains(&(i - 1))
                });
            }
            (Op::Remove, Some(sub)) => {
                for i in hits {
                    if let Some(o) = items[i].as_object_mut() {
                        let k = key_of(o, sub);
                        o.remove(&k);
                    }
                }
            }
            (_, Some(sub)) => {
                for i in hits {
                    if let Some(o) = items[i].as_object_mut() {
                        let k = key_of(o, sub);
                        o.insert(k, value.clone().unwrap_or(Value::Null));
                    }
                }
            }
            (_, None) => {
                for i in hits {
                    merge(&mut items[i], value.clone().unwrap_or(Value::Null));
                }
            }
        }
        return Ok(());
    }
    if let Some(sub) = &path.sub {
        let slot = obj.entry(key).or_insert_with(|| Value::Object(Map::new()));
        let targets: Vec<&mut Value> = match slot {
            Value::Array(items) => items.iter_mut().collect(),
            other => vec![other],
        };
        for t in targets {
            if !t.is_object() {
                *t = Value::Object(Map::new());
            }
            if let Some(o) = t.as_object_mut() {
                let k = key_of(o, sub);
                match op {
                    Op::Remove => {
                        o.remove(&k);
                    }
                    _ => {
                        o.insert(k, value.clone().unwrap_or(Value::Null));
                    }
                }
            }
        }
        return Ok(());
    }
    match op {
        Op::Remove => {
            match (obj.get_mut(&key), value) {
                // `remove members` with the members to remove as the value.
                (Some(Value::Array(items)), Some(Value::Array(gone))) => {
                    items.retain(|i| !gone.iter().any(|g| same_value(i, g)));
                }
                (Some(Value::Array(items)), Some(one @ Value::Object(_))) => {
                    items.retain(|i| !same_value(i, &one));
                }
                _ => {
                    obj.remove(&key);
                }
            }
            Ok(())
        }
        Op::Add if is_multi(&path.attr) => {
            let new = match value {
                Some(Value::Array(a)) => a,
                Some(Value::Null) | None => Vec::new(),
                Some(one) => vec![one],
            };
            let slot = obj.entry(key).or_insert_with(|| Value::Array(Vec::new()));
            if !slot.is_array() {
                *slot = Value::Array(Vec::new());
            }
            if let Value::Array(items) = slot {
                for n in new {
                    if !items.iter().any(|i| same_value(i, &n)) {
                        items.push(n);
                    }
                }
            }
            Ok(())
        }
        Op::Replace if is_multi(&path.attr) => {
            let new = match value {
                Some(Value::Array(a)) => Value::Array(a),
                Some(Value::Null) | None => Value::Array(Vec::new()),
                Some(one) => Value::Array(vec![one]),
            };
            obj.insert(key, new);
            Ok(())
        }
        _ => {
            let value = value.unwrap_or(Value::Null);
            match obj.get_mut(&key) {
                Some(slot) if slot.is_object() && value.is_object() => merge(slot, value),
                _ => {
                    obj.insert(key, value);
                }
            }
            Ok(())
        }
    }
}

/// Most paths an `attributes` or `excludedAttributes` list may name: each
/// is looked up in every returned resource, and the schemas hold far fewer.
pub const MAX_ATTRIBUTES: usize = 100;

/// `attributes` and `excludedAttributes` (RFC 7644 §3.4.2.5), parsed once
/// per request and applied to each resource returned.
#[derive(Debug, Default)]
pub struct Projection {
    only: Vec<Path>,
    except: Vec<Path>,
}

impl Projection {
    /// The lists as sent: comma-separated attribute paths.
    pub fn parse(attributes: Option<&str>, excluded: Option<&str>) -> Result<Self, ScimError> {
        Ok(Projection {
            only: attribute_list("attributes", attributes)?,
            except: attribute_list("excludedAttributes", excluded)?,
        })
    }

    pub fn apply(&self, v: Value) -> Value {
        project(v, &self.only, &self.except)
    }
}

fn attribute_list(name: &str, list: Option<&str>) -> Result<Vec<Path>, ScimError> {
    let Some(list) = list else {
        return Ok(Vec::new());
    };
    let items = || list.split(',').map(str::trim).filter(|s| !s.is_empty());
    if items().nth(MAX_ATTRIBUTES).is_some() {
        return Err(ScimError::bad(
            "invalidValue",
            format!(
                "`{name}` names {} attributes; at most {MAX_ATTRIBUTES} are accepted",
                items().count()
            ),
        ));
    }
    items()
        .map(|p| {
            parse_path(p).map_err(|e| {
                ScimError::new(e.status, e.scim_type, format!("`{name}`: {}", e.detail))
            })
        })
        .collect()
}

/// Keep only `only` (when given) and drop `except`; `id` and `schemas`
/// are always returned.
pub fn project(v: Value, only: &[Path], except: &[Path]) -> Value {
    let mut v = if only.is_empty() {
        v
    } else {
        let mut out = Map::new();
        for k in ["schemas", "id"] {
            if let Some(x) = v.get(k) {
                out.insert(k.to_string(), x.clone());
            }
        }
        let mut out = Value::Object(out);
        for p in only {
            copy(&v, &mut out, p);
        }
        out
    };
    for p in except {
        if p.attr.eq_ignore_ascii_case("id") || p.attr.eq_ignore_ascii_case("schemas") {
            continue;
        }
        let src = match p.ext {
            None => v.as_object_mut(),
            Some(urn) => v
                .as_object_mut()
                .and_then(|o| {
                    o.iter_mut()
                        .find(|(k, _)| k.eq_ignore_ascii_case(urn))
                        .map(|(_, v)| v)
                })
                .and_then(Value::as_object_mut),
        };
        let Some(src) = src else { continue };
        let key = key_of(src, &p.attr);
        match &p.sub {
            None => {
                src.remove(&key);
            }
            Some(sub) => match src.get_mut(&key) {
                Some(Value::Array(items)) => {
                    for i in items.iter_mut().filter_map(Value::as_object_mut) {
                        let k = key_of(i, sub);
                        i.remove(&k);
                    }
                }
                Some(Value::Object(o)) => {
                    let k = key_of(o, sub);
                    o.remove(&k);
                }
                _ => {}
            },
        }
    }
    v
}

fn copy(from: &Value, to: &mut Value, p: &Path) {
    let (src, dst) = match p.ext {
        None => (Some(from), to.as_object_mut()),
        Some(urn) => {
            let s = get_ci(from, urn);
            let d = to.as_object_mut().map(|o| {
                o.entry(urn.to_string())
                    .or_insert_with(|| Value::Object(Map::new()))
            });
            (s, d.and_then(Value::as_object_mut))
        }
    };
    let (Some(src), Some(dst)) = (src, dst) else {
        return;
    };
    if p.attr.is_empty() {
        if let Some(o) = src.as_object() {
            dst.extend(o.clone());
        }
        return;
    }
    let Some(val) = get_ci(src, &p.attr) else {
        return;
    };
    let key = src
        .as_object()
        .map(|o| key_of(o, &p.attr))
        .unwrap_or_else(|| p.attr.clone());
    match (&p.sub, val) {
        (None, _) => {
            dst.insert(key, val.clone());
        }
        (Some(sub), Value::Array(items)) => {
            let picked: Vec<Value> = items
                .iter()
                .map(|i| {
                    let mut o = Map::new();
                    if let Some(x) = get_ci(i, sub) {
                        o.insert(canon(sub), x.clone());
                    }
                    Value::Object(o)
                })
                .collect();
            dst.insert(key, Value::Array(picked));
        }
        (Some(sub), Value::Object(_)) => {
            if let Some(x) = get_ci(val, sub) {
                let slot = dst.entry(key).or_insert_with(|| Value::Object(Map::new()));
                if let Some(o) = slot.as_object_mut() {
                    o.insert(canon(sub), x.clone());
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn patched(v: &mut Value, op: &str, path: &str) -> Result<(), ScimError> {
        let body =
            json!({"schemas": [PATCH_OP], "Operations": [{"op": op, "path": path, "value": "x"}]});
        apply(v, &operations(&body)?)
    }

    #[test]
    fn unknown_and_read_only_paths_are_refused_and_known_ones_pass() {
        let user = json!({"schemas": [USER, EXT_USER], "id": "1", "userName": "a", "emails": [{"value": "a@example.org", "type": "work"}]});
        let group = json!({"schemas": [GROUP, EXT_GROUP], "id": "2", "displayName": "g"});
        let long = "b".repeat(200_000);
        let cases = [
            (&user, "bogus", Some("invalidPath")),
            (&user, "name.bogus", Some("invalidPath")),
            (&user, long.as_str(), Some("invalidPath")),
            (
                &user,
                "urn:roster:params:scim:schemas:extension:roster:2.0:User:bogus",
                Some("invalidPath"),
            ),
            (
                &user,
                "urn:roster:params:scim:schemas:extension:roster:2.0:Group:lwia",
                Some("invalidPath"),
            ),
            (&user, "displayName.value", Some("invalidPath")),
            (&user, "id", Some("mutability")),
            (&user, "META.created", Some("mutability")),
            (&user, "groups", Some("mutability")),
            (&user, "groups[value eq \"1\"].display", Some("mutability")),
            (&group, "userName", Some("invalidPath")),
            (&group, "members.bogus", Some("invalidPath")),
            (&group, "meta", Some("mutability")),
            (&user, "USERNAME", None),
            (&user, "name.GivenName", None),
            (&user, "emails[type eq \"work\"].value", None),
            (&user, "externalId", None),
            (
                &user,
                "urn:roster:params:scim:schemas:extension:roster:2.0:User:birthDate",
                None,
            ),
            (&group, "displayName", None),
            (
                &group,
                "urn:roster:params:scim:schemas:extension:roster:2.0:Group:lwia",
                None,
            ),
        ];
        for (v, path, want) in cases {
            let mut v = v.clone();
            let before = v.clone();
            let got = patched(&mut v, "replace", path);
            let shown = &path[..path.len().min(40)];
            match want {
                None => assert!(got.is_ok(), "{shown}: {:?}", got.err().map(|e| e.detail)),
                Some(kind) => {
                    let e = got.expect_err(shown);
                    assert_eq!(e.scim_type, Some(kind), "{shown}: {}", e.detail);
                    assert!(e.detail.len() < 300, "{shown}: {} bytes", e.detail.len());
                    assert_eq!(v, before, "{shown}");
                }
            }
        }
    }

    #[test]
    fn ops_other_than_add_replace_remove_are_syntax_errors() {
        for op in ["move", "test", "", "adds"] {
            let body = json!({"schemas": [PATCH_OP], "Operations": [{"op": op, "path": "active", "value": true}]});
            let e = operations(&body).err().expect(op);
            assert_eq!(e.scim_type, Some("invalidSyntax"), "{op}");
        }
        let body =
            json!({"schemas": [PATCH_OP], "Operations": [{"op": "ReMoVe", "path": "active"}]});
        assert!(operations(&body).is_ok());
    }

    #[test]
    fn paths_with_any_characters_anywhere_are_refused_not_panics() {
        let seeds = [
            "urn:ietf:params:scim:schemas:core:2.0:User:name.givenName",
            "members[value eq \"1\"].display",
            "abc",
            "urn:",
        ];
        for seed in seeds {
            for c in ['é', 'ẞ', '😀', '\u{0}'] {
                for i in (0..=seed.len()).filter(|i| seed.is_char_boundary(*i)) {
                    let mut p = seed.to_string();
                    p.insert(i, c);
                    if let Err(e) = parse_path(&p) {
                        assert_eq!(e.scim_type, Some("invalidPath"), "{p}: {}", e.detail);
                    }
                }
            }
        }
        let e = parse_path("abcé").unwrap_err();
        assert_eq!(e.detail, "path `abcé`: not an attribute name");
        let long = format!("{}é", "a".repeat(100_000));
        let e = parse_path(&long).unwrap_err();
        assert!(e.detail.len() < 200, "{}", e.detail);
        assert!(e.detail.contains("…(100002 bytes)"), "{}", e.detail);
    }

    #[test]
    fn attribute_lists_are_bounded() {
        let at_most = vec!["userName"; MAX_ATTRIBUTES].join(",");
        assert!(Projection::parse(Some(&at_most), None).is_ok());
        let over = format!("{at_most},emails");
        let e = Projection::parse(None, Some(&over)).unwrap_err();
        assert_eq!(e.scim_type, Some("invalidValue"));
        assert!(
            e.detail
                .starts_with("`excludedAttributes` names 101 attributes"),
            "{}",
            e.detail
        );
        // Empty entries are not paths.
        assert!(Projection::parse(Some(&format!("{at_most},, ,")), None).is_ok());
    }
    fn patch(resource: &Value, ops: Value) -> Result<Value, ScimError> {
        let body = serde_json::json!({"schemas": [PATCH_OP], "Operations": ops});
        let ops = operations(&body)?;
        let mut v = resource.clone();
        apply(&mut v, &ops)?;
        Ok(v)
    }

    fn user() -> Value {
        serde_json::json!({
            "schemas": [USER, EXT_USER],
            "userName": "ann@example.org",
            "name": {"givenName": "Ann", "familyName": "Lee"},
            "active": true,
            "emails": [{"value": "ann@example.org", "primary": true}],
            "phoneNumbers": [
                {"value": "2178529634", "type": "work"},
                {"value": "2178529635", "type": "mobile"}
            ],
            EXT_USER: {"birthDate": "1980-01-01", "postalCode": "62568"}
        })
    }

    #[test]
    fn operations_change_what_they_name() {
        use serde_json::json;
        let cases: Vec<(&str, Value, Value)> = vec![
            (
                "replace a simple attribute",
                json!([{"op": "replace", "path": "active", "value": false}]),
                json!({"active": false}),
            ),
            (
                "replace a sub-attribute, case-insensitive names",
                json!([{"op": "Replace", "path": "NAME.givenname", "value": "Anna"}]),
                json!({"name": {"givenName": "Anna", "familyName": "Lee"}}),
            ),
            (
                "replace an object merges it",
                json!([{"op": "replace", "path": "name", "value": {"familyName": "Ray"}}]),
                json!({"name": {"givenName": "Ann", "familyName": "Ray"}}),
            ),
            (
                "remove a sub-attribute",
                json!([{"op": "remove", "path": "name.givenName"}]),
                json!({"name": {"familyName": "Lee"}}),
            ),
            (
                "remove an attribute",
                json!([{"op": "remove", "path": "name"}]),
                json!({"name": null}),
            ),
            (
                "add appends to a multi-valued attribute, once",
                json!([{"op": "add", "path": "emails", "value": [{"value": "a2@example.org"}, {"value": "ann@example.org"}]}]),
                json!({"emails": [{"value": "ann@example.org", "primary": true}, {"value": "a2@example.org"}]}),
            ),
            (
                "add one value to a multi-valued attribute",
                json!([{"op": "add", "path": "roles", "value": {"value": "staff"}}]),
                json!({"roles": [{"value": "staff"}]}),
            ),
            (
                "replace a multi-valued attribute replaces all",
                json!([{"op": "replace", "path": "emails", "value": {"value": "b@example.org"}}]),
                json!({"emails": [{"value": "b@example.org"}]}),
            ),
            (
                "replace through a value filter",
                json!([{"op": "replace", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "2178520000"}]),
                json!({"phoneNumbers": [{"value": "2178529634", "type": "work"}, {"value": "2178520000", "type": "mobile"}]}),
            ),
            (
                "remove through a value filter",
                json!([{"op": "remove", "path": "phoneNumbers[type eq \"work\"]"}]),
                json!({"phoneNumbers": [{"value": "2178529635", "type": "mobile"}]}),
            ),
            (
                "remove a sub-attribute through a filter",
                json!([{"op": "remove", "path": "phoneNumbers[value sw \"2178529635\"].type"}]),
                json!({"phoneNumbers": [{"value": "2178529634", "type": "work"}, {"value": "2178529635"}]}),
            ),
            (
                "remove listed values",
                json!([{"op": "remove", "path": "phoneNumbers", "value": [{"value": "2178529634"}]}]),
                json!({"phoneNumbers": [{"value": "2178529635", "type": "mobile"}]}),
            ),
            (
                "an extension attribute by its full path",
                json!([{"op": "replace", "path": format!("{EXT_USER}:postalCode"), "value": "62569"}]),
                json!({EXT_USER: {"birthDate": "1980-01-01", "postalCode": "62569"}}),
            ),
            (
                "remove a whole extension",
                json!([{"op": "remove", "path": EXT_USER}]),
                json!({EXT_USER: {}}),
            ),
            (
                "no path: the value's attributes, extensions inside",
                json!([{"op": "replace", "value": {"active": false, "schemas": ["x"], EXT_USER: {"postalCode": "60601"}}}]),
                json!({"active": false, EXT_USER: {"birthDate": "1980-01-01", "postalCode": "60601"}}),
            ),
            (
                "no path add: appends to multi-valued",
                json!([{"op": "add", "value": {"emails": [{"value": "c@example.org"}]}}]),
                json!({"emails": [{"value": "ann@example.org", "primary": true}, {"value": "c@example.org"}]}),
            ),
            (
                "operations apply in order",
                json!([
                    {"op": "replace", "path": "active", "value": false},
                    {"op": "replace", "path": "active", "value": true},
                    {"op": "add", "path": "name.givenName", "value": "Jo"}
                ]),
                json!({"name": {"givenName": "Jo", "familyName": "Lee"}}),
            ),
        ];
        for (name, ops, changed) in cases {
            let got = patch(&user(), ops).unwrap_or_else(|e| panic!("{name}: {}", e.detail));
            let mut want = user();
            for (k, v) in changed.as_object().unwrap() {
                if v.is_null() {
                    want.as_object_mut().unwrap().remove(k);
                } else {
                    want[k] = v.clone();
                }
            }
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn bad_requests_are_refused_with_their_scim_type() {
        use serde_json::json;
        let cases: Vec<(&str, Value, &str, &str)> = vec![
            (
                "unknown op",
                json!({"schemas": [PATCH_OP], "Operations": [{"op": "move", "path": "active", "value": 1}]}),
                "invalidSyntax",
                "operation 1: `op` must be add, replace or remove, not Some(\"move\")",
            ),
            (
                "missing op",
                json!({"schemas": [PATCH_OP], "Operations": [{"path": "active"}]}),
                "invalidSyntax",
                "operation 1: `op` must be add, replace or remove, not None",
            ),
            ("no schema", json!({"Operations": []}), "invalidSyntax", ""),
            (
                "wrong schema",
                json!({"schemas": [USER], "Operations": []}),
                "invalidSyntax",
                "",
            ),
            (
                "no operations",
                json!({"schemas": [PATCH_OP]}),
                "invalidSyntax",
                "a PATCH body has an `Operations` array",
            ),
            (
                "remove without path",
                json!({"schemas": [PATCH_OP], "Operations": [{"op": "add", "path": "active", "value": true}, {"op": "remove"}]}),
                "noTarget",
                "operation 2: remove needs a `path`",
            ),
            (
                "add without value",
                json!({"schemas": [PATCH_OP], "Operations": [{"op": "add", "path": "active"}]}),
                "invalidValue",
                "operation 1: Add needs a `value`",
            ),
            (
                "bad path",
                json!({"schemas": [PATCH_OP], "Operations": [{"op": "remove", "path": "name..x"}]}),
                "invalidPath",
                "",
            ),
            (
                "unknown schema",
                json!({"schemas": [PATCH_OP], "Operations": [{"op": "remove", "path": "urn:x:y:active"}]}),
                "invalidPath",
                "path `urn:x:y:active`: unknown schema `urn:x:y`",
            ),
            (
                "unclosed filter",
                json!({"schemas": [PATCH_OP], "Operations": [{"op": "remove", "path": "emails[value eq \"a\""}]}),
                "invalidPath",
                "",
            ),
            (
                "bad filter",
                json!({"schemas": [PATCH_OP], "Operations": [{"op": "remove", "path": "emails[value zz \"a\"]"}]}),
                "invalidPath",
                "",
            ),
        ];
        for (name, body, scim_type, detail) in cases {
            let Err(e) = operations(&body) else {
                panic!("{name}: accepted");
            };
            assert_eq!(e.scim_type, Some(scim_type), "{name}: {}", e.detail);
            if !detail.is_empty() {
                assert_eq!(e.detail, detail, "{name}");
            }
        }
    }

    #[test]
    fn operations_that_miss_their_target_change_nothing_and_say_so() {
        use serde_json::json;
        let cases: Vec<(&str, Value, &str)> = vec![
            (
                "filter matches nothing",
                json!([{"op": "replace", "path": "emails[value eq \"zz@example.org\"].type", "value": "work"}]),
                "noTarget",
            ),
            (
                "filter on a missing attribute",
                json!([{"op": "remove", "path": "roles[value eq \"x\"]"}]),
                "noTarget",
            ),
            (
                "no path and no object",
                json!([{"op": "replace", "value": "x"}]),
                "invalidValue",
            ),
            (
                "whole extension with a scalar",
                json!([{"op": "replace", "path": EXT_USER, "value": 1}]),
                "invalidValue",
            ),
            (
                "bad key in a pathless value",
                json!([{"op": "replace", "value": {"a b": 1}}]),
                "invalidPath",
            ),
        ];
        for (name, ops, scim_type) in cases {
            let Err(e) = patch(&user(), ops) else {
                panic!("{name}: applied");
            };
            assert_eq!(e.scim_type, Some(scim_type), "{name}: {}", e.detail);
        }
        let e = patch(
            &user(),
            json!([{"op": "remove", "path": "emails[value eq \"zz\"]"}]),
        )
        .unwrap_err();
        assert_eq!(e.detail, "path `emails[value eq \"zz\"]` matches no value");
    }

    #[test]
    fn paths_parse_into_their_parts() {
        let p = parse_path("Emails[type eq \"work\"].VALUE").unwrap();
        assert_eq!(
            (p.ext, p.attr.as_str(), p.sub.as_deref()),
            (None, "emails", Some("value"))
        );
        assert!(p.filter.is_some());
        let p = parse_path(&format!("{USER}:name.givenName")).unwrap();
        assert_eq!(
            (p.ext, p.attr.as_str(), p.sub.as_deref()),
            (None, "name", Some("givenName"))
        );
        let p = parse_path(&format!("{}:birthdate", EXT_USER.to_uppercase())).unwrap();
        assert_eq!((p.ext, p.attr.as_str()), (Some(EXT_USER), "birthDate"));
        let p = parse_path(EXT_USER).unwrap();
        assert_eq!((p.ext, p.attr.as_str()), (Some(EXT_USER), ""));
        for bad in [
            "",
            "1abc",
            "name.",
            "name.a.b",
            "a]b[",
            "emails]x[",
            "urn:nothing",
        ] {
            assert!(parse_path(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn projection_keeps_or_drops_what_it_names() {
        use serde_json::json;
        let mut u = user();
        u["id"] = json!("42");
        let postal = format!("{EXT_USER}:postalCode");
        let cases: Vec<(Option<&str>, Option<&str>, Value)> = vec![
            (
                Some("userName"),
                None,
                json!({"schemas": [USER, EXT_USER], "id": "42", "userName": "ann@example.org"}),
            ),
            (
                Some("NAME.familyName, emails.value"),
                None,
                json!({"schemas": [USER, EXT_USER], "id": "42", "name": {"familyName": "Lee"}, "emails": [{"value": "ann@example.org"}]}),
            ),
            (
                Some(postal.as_str()),
                None,
                json!({"schemas": [USER, EXT_USER], "id": "42", EXT_USER: {"postalCode": "62568"}}),
            ),
        ];
        for (only, except, want) in cases {
            let got = Projection::parse(only, except).unwrap().apply(u.clone());
            assert_eq!(got, want, "{only:?} {except:?}");
        }
        // Excluding removes just what is named; `id` and `schemas` stay.
        let got = Projection::parse(
            None,
            Some("id,schemas,phoneNumbers,name.givenName,emails.primary"),
        )
        .unwrap()
        .apply(u.clone());
        let mut want = u.clone();
        let o = want.as_object_mut().unwrap();
        o.remove("phoneNumbers");
        o["name"].as_object_mut().unwrap().remove("givenName");
        o["emails"][0].as_object_mut().unwrap().remove("primary");
        assert_eq!(got, want);
        let got = Projection::parse(None, Some(&format!("{EXT_USER}:birthDate")))
            .unwrap()
            .apply(u.clone());
        assert_eq!(got[EXT_USER], json!({"postalCode": "62568"}));
        // A bad path in either list names the list.
        let e = Projection::parse(Some("name..x"), None).unwrap_err();
        assert_eq!(e.scim_type, Some("invalidPath"));
        assert!(
            e.detail.starts_with("`attributes`: path `name..x`"),
            "{}",
            e.detail
        );
        let e = Projection::parse(None, Some("urn:x:y")).unwrap_err();
        assert!(
            e.detail.starts_with("`excludedAttributes`: "),
            "{}",
            e.detail
        );
    }
}
