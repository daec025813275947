//! How roster's accounts and groups look as SCIM 2.0 resources (RFC 7643),
//! both ways: the client store writes and reads them, `roster serve`
//! publishes them. One mapping, so a plan made through `roster serve` is the
//! plan made against the store underneath.
//!
//! - User: `userName`, `name.givenName`/`familyName`, the primary work email,
//!   the work phone, `active`, one role, and the roster extension
//!   (`birthDate` "YYYY-MM-DD", `postalCode`, `phoneExtension`).
//! - Group: `displayName`, `members`, and the roster extension (`type`,
//!   `lwia`, `userManagers`: the members who manage the group's users).

use crate::domain::{
    Account, CredentialState, Entitlement, Group, GroupType, Profile, Role, sorted_unique,
};
use serde_json::{Map, Value, json};

pub const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const EXT_USER: &str = "urn:roster:params:scim:schemas:extension:roster:2.0:User";
pub const EXT_GROUP: &str = "urn:roster:params:scim:schemas:extension:roster:2.0:Group";
pub const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
pub const BULK_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
pub const BULK_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";

/// The core User and Group schemas, limited to the attributes roster keeps.
pub const CORE_JSON: &str = include_str!("../../schemas/scim/roster-core.json");

/// The two extension schemas in RFC 7643 §7 form: served under /Schemas and
/// given to other providers that should hold roster's fields.
pub const EXTENSIONS_JSON: &str = include_str!("../../schemas/scim/roster-extensions.json");

/// A reference to another resource: its `id` and its `display` name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ref {
    pub id: String,
    pub display: String,
}

/// What is wrong with a resource body, for a 400 `invalidValue` or a
/// client-side error naming the resource.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct ResourceError(pub String);

/// The User resource of an account, without `id`, `groups` and `meta`:
/// the body of a create or replace.
pub fn user_resource(user_name: &str, profile: &Profile, active: bool) -> Value {
    let mut ext = Map::new();
    let mut put = |k: &str, v: &Option<String>| {
        if let Some(v) = v {
            ext.insert(k.to_string(), Value::String(v.clone()));
        }
    };
    put("birthDate", &profile.birth_date);
    put("postalCode", &profile.zip);
    put("phoneExtension", &profile.extension);
    let mut user = json!({
        "schemas": [USER, EXT_USER],
        "userName": user_name,
        "active": active,
    });
    // Unset values are left out rather than sent empty, so a removed
    // attribute reads back as absent.
    let mut name = Map::new();
    for (k, v) in [
        ("givenName", &profile.first_name),
        ("familyName", &profile.last_name),
    ] {
        if !v.is_empty() {
            name.insert(k.to_string(), Value::String(v.clone()));
        }
    }
    if !name.is_empty() {
        user["name"] = Value::Object(name);
    }
    if !profile.email.is_empty() {
        user["emails"] = json!([{"value": profile.email, "type": "work"}]);
    }
    if let Some(phone) = &profile.phone {
        user["phoneNumbers"] = json!([{"value": phone, "type": "work"}]);
    }
    if !ext.is_empty() {
        user[EXT_USER] = Value::Object(ext);
    }
    user
}

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// The value of a multi-valued attribute: the primary entry, else the first.
fn primary_value<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    let items = v.get(key)?.as_array()?;
    let primary = items
        .iter()
        .find(|i| i.get("primary").and_then(Value::as_bool) == Some(true));
    primary
        .or_else(|| items.first())
        .and_then(|i| str_at(i, "value"))
}

/// Read an account from a User resource; returns its `id` too. Attributes
/// roster does not keep are ignored; a missing `userName` is an error.
/// The account's `case_manager` is the enterprise `manager.value` as
/// sent: the manager's *id*, which the caller maps to a user name.
pub fn account_from_user(v: &Value) -> Result<(String, Account), ResourceError> {
    let id = match v.get("id") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    let user_name = str_at(v, "userName")
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| ResourceError("the User has no userName".into()))?;
    let name = v.get("name");
    let name_part = |k: &str| {
        name.and_then(|n| str_at(n, k))
            .unwrap_or_default()
            .to_string()
    };
    let ext = v.get(EXT_USER);
    let ext_str = |k: &str| {
        ext.and_then(|e| str_at(e, k))
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    // A User that names no role holds the default one, as before roles
    // became a catalog.
    let mut roles: Vec<String> = values(v, "roles")
        .map(|(value, _)| value.to_string())
        .collect();
    if v.get("roles").is_none_or(Value::is_null) {
        roles.push(Role::default().as_str().to_string());
    }
    // `value` is `KIND:VALUE`; `type` says the kind where the value does not.
    let entitlements: Vec<Entitlement> = values(v, "entitlements")
        .filter_map(|(value, kind)| match value.split_once(':') {
            Some((k, val)) if kind.is_none_or(|t| t == k) => Some(Entitlement::new(k, val)),
            _ => kind.map(|t| Entitlement::new(t, value)),
        })
        .collect();
    let active = match v.get("active") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(ResourceError("`active` must be true or false".into())),
    };
    let profile = Profile {
        email: primary_value(v, "emails").unwrap_or_default().to_string(),
        first_name: name_part("givenName"),
        last_name: name_part("familyName"),
        birth_date: ext_str("birthDate"),
        phone: primary_value(v, "phoneNumbers").map(str::to_string),
        extension: ext_str("phoneExtension"),
        zip: ext_str("postalCode"),
    };
    let manager = manager_id(v).map(str::to_string);
    let mut account = Account::new(user_name, profile, CredentialState::None);
    account.active = active;
    account.roles = sorted_unique(roles);
    account.entitlements = sorted_unique(entitlements);
    account.case_manager = manager;
    Ok((id, account))
}

/// The enterprise User extension (RFC 7643 §4.3), where `manager` is.
pub const EXT_ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// The enterprise extension's schema as roster serves it: `manager` only.
pub const ENTERPRISE_JSON: &str = include_str!("../../schemas/scim/enterprise.json");

/// The id of a User's manager (`manager.value` of the enterprise extension).
pub fn manager_id(v: &Value) -> Option<&str> {
    v.get(EXT_ENTERPRISE)
        .and_then(|e| e.get("manager"))
        .and_then(|m| str_at(m, "value"))
        .filter(|s| !s.is_empty())
}

/// Set (or, with `None`, clear) a User's manager: `id`, and the
/// `displayName` and `$ref` a provider shows with it.
pub fn put_manager(user: &mut Value, manager: Option<(&str, &str)>, base: Option<&str>) {
    let Some(obj) = user.as_object_mut() else {
        return;
    };
    let Some((id, name)) = manager else {
        obj.remove(EXT_ENTERPRISE);
        return;
    };
    let mut m = json!({ "value": id, "displayName": name });
    if let Some(base) = base {
        m["$ref"] = json!(format!("{base}/Users/{id}"));
    }
    obj.insert(EXT_ENTERPRISE.to_string(), json!({ "manager": m }));
    if let Some(schemas) = obj.get_mut("schemas").and_then(Value::as_array_mut)
        && !schemas.iter().any(|s| s == EXT_ENTERPRISE)
    {
        schemas.push(json!(EXT_ENTERPRISE));
    }
}

/// The `value`s (with their `type`) of a multi-valued attribute.
fn values<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = (&'a str, Option<&'a str>)> {
    v.get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|i| Some((str_at(i, "value")?, str_at(i, "type"))))
}

/// The roles and entitlements of `a` in a User resource (the manager is
/// [`put_manager`]'s: it needs the manager's id).
pub fn put_grants(user: &mut Value, a: &Account) {
    if !a.roles.is_empty() {
        user["roles"] = Value::Array(a.roles.iter().map(|r| json!({ "value": r })).collect());
    }
    if !a.entitlements.is_empty() {
        user["entitlements"] = Value::Array(
            a.entitlements
                .iter()
                .map(|e| json!({ "value": format!("{}:{}", e.kind, e.value), "type": e.kind }))
                .collect(),
        );
    }
}

/// The longest text roster takes in one attribute of a request body.
pub const MAX_TEXT: usize = 256;

/// The most roles, or entitlements, one User body may hold.
pub const MAX_ITEMS: usize = 1000;

/// Check the shape of a User sent to `roster serve`, before it is read with
/// [`account_from_user`] (which stays lenient for what other providers
/// answer): every attribute roster keeps has its type, multi-valued ones
/// hold at most the one value roster keeps (roles and entitlements: any
/// number, entitlements as `KIND:VALUE`), and no text is longer than
/// [`MAX_TEXT`]. Nothing roster keeps is dropped without a word.
pub fn check_user_shape(v: &Value) -> Result<(), ResourceError> {
    let bad = |attr: &str, what: &str| Err(ResourceError(format!("{attr} {what}")));
    let text = |attr: &str, x: Option<&Value>| -> Result<(), ResourceError> {
        match x {
            None | Some(Value::Null) => Ok(()),
            Some(Value::String(s)) if s.chars().count() > MAX_TEXT => {
                bad(attr, &format!("is longer than {MAX_TEXT} characters"))
            }
            Some(Value::String(_)) => Ok(()),
            Some(_) => bad(attr, "must be a string"),
        }
    };
    let object = |attr: &str, x: Option<&Value>| -> Result<(), ResourceError> {
        match x {
            None | Some(Value::Null | Value::Object(_)) => Ok(()),
            Some(_) => bad(attr, "must be an object"),
        }
    };
    text("userName", v.get("userName"))?;
    text("displayName", v.get("displayName"))?;
    text("externalId", v.get("externalId"))?;
    object("name", v.get("name"))?;
    for k in ["givenName", "familyName", "formatted"] {
        text(&format!("name.{k}"), v.get("name").and_then(|n| n.get(k)))?;
    }
    // One work email and one work phone: roster keeps no other.
    for attr in ["emails", "phoneNumbers"] {
        let items = match v.get(attr) {
            None | Some(Value::Null) => continue,
            Some(Value::Array(items)) => items,
            Some(_) => return bad(attr, "must be an array of objects with a string `value`"),
        };
        if items.len() > 1 {
            return bad(
                attr,
                "holds more than one value; roster keeps one, of type work",
            );
        }
        for item in items {
            if !item.is_object() || !item.get("value").is_some_and(Value::is_string) {
                return bad(attr, "must be an array of objects with a string `value`");
            }
            text(&format!("{attr}.value"), item.get("value"))?;
            match item.get("type") {
                None | Some(Value::Null) => {}
                Some(Value::String(t)) if t.eq_ignore_ascii_case("work") => {}
                Some(_) => {
                    return bad(
                        &format!("{attr}.type"),
                        "must be work: roster keeps no other",
                    );
                }
            }
            if !matches!(
                item.get("primary"),
                None | Some(Value::Null | Value::Bool(_))
            ) {
                return bad(&format!("{attr}.primary"), "must be true or false");
            }
        }
    }
    // Roles and entitlements: any number, each once; whether they are in
    // the catalog is the server's to say (it knows the roster's policy).
    let items = |attr: &str, what: &str| -> Result<Vec<&str>, ResourceError> {
        let shape = || ResourceError(format!("{attr} must be an array of objects with {what}"));
        let list = match v.get(attr) {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::Array(list)) => list,
            Some(_) => return Err(shape()),
        };
        if list.len() > MAX_ITEMS {
            return Err(ResourceError(format!(
                "{attr} holds more than {MAX_ITEMS} values"
            )));
        }
        list.iter()
            .map(|i| {
                let value = i.get("value").and_then(Value::as_str).ok_or_else(shape)?;
                text(&format!("{attr}.value"), i.get("value"))?;
                text(&format!("{attr}.type"), i.get("type"))?;
                Ok(value)
            })
            .collect()
    };
    for role in items("roles", "a string `value` (a role)")? {
        if role.trim().is_empty() {
            return bad("roles", "holds an empty role");
        }
    }
    let ents = v.get("entitlements").and_then(Value::as_array);
    for (i, value) in items("entitlements", "a string `value` of KIND:VALUE")?
        .into_iter()
        .enumerate()
    {
        let Some((kind, val)) = value
            .split_once(':')
            .filter(|(k, x)| !k.trim().is_empty() && !x.trim().is_empty())
        else {
            return bad(
                "entitlements",
                &format!(
                    "value `{}` is not KIND:VALUE; write the catalog and the grant, e.g. products:webcenter",
                    super::excerpt(value)
                ),
            );
        };
        let typ = ents.and_then(|l| l[i].get("type")).and_then(Value::as_str);
        if let Some(t) = typ.filter(|t| *t != kind) {
            return bad(
                "entitlements.type",
                &format!(
                    "`{}` differs from the kind `{}` of value `{}`; leave type out or make them agree",
                    super::excerpt(t),
                    super::excerpt(kind),
                    super::excerpt(&format!("{kind}:{val}"))
                ),
            );
        }
    }
    let manager = format!("{EXT_ENTERPRISE}:manager");
    object(EXT_ENTERPRISE, v.get(EXT_ENTERPRISE))?;
    match v.get(EXT_ENTERPRISE).and_then(|e| e.get("manager")) {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => match m.get("value") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_TEXT => {}
            Some(_) => return bad(&manager, "value must be the id of a User"),
        },
        Some(_) => {
            return bad(
                &manager,
                "must be an object with the `value` of a User's id",
            );
        }
    }
    object(EXT_USER, v.get(EXT_USER))?;
    for k in ["birthDate", "postalCode", "phoneExtension"] {
        text(
            &format!("{EXT_USER}:{k}"),
            v.get(EXT_USER).and_then(|e| e.get(k)),
        )?;
    }
    Ok(())
}

/// Where a request body holds text no roster file may: a control character
/// (NUL among them, which PostgreSQL cannot store) in any string or name.
/// Returns the attribute's path, e.g. `name.givenName` or `emails[0].value`.
pub fn control_character_at(v: &Value) -> Option<String> {
    fn shown(key: &str) -> String {
        let k: String = key.chars().take(40).collect();
        k.escape_default().to_string()
    }
    fn walk(v: &Value, path: &str) -> Option<String> {
        match v {
            Value::String(s) if s.chars().any(char::is_control) => Some(path.to_string()),
            Value::Array(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, x)| walk(x, &format!("{path}[{i}]"))),
            Value::Object(m) => m.iter().find_map(|(k, x)| {
                let p = if path.is_empty() {
                    shown(k)
                } else {
                    format!("{path}.{}", shown(k))
                };
                if k.chars().any(char::is_control) {
                    Some(p)
                } else {
                    walk(x, &p)
                }
            }),
            _ => None,
        }
    }
    // Most bodies hold none: looked for first without building any path.
    fn any(v: &Value) -> bool {
        match v {
            Value::String(s) => s.chars().any(char::is_control),
            Value::Array(items) => items.iter().any(any),
            Value::Object(m) => m
                .iter()
                .any(|(k, x)| k.chars().any(char::is_control) || any(x)),
            _ => false,
        }
    }
    if !any(v) {
        return None;
    }
    walk(v, "")
}

/// Check an account's values as `roster check` checks a partner's (same
/// rules, from [`crate::roster::normalize`]), naming SCIM attributes. Only
/// values that differ from `before` are checked, so an account stored before
/// these rules can still be changed elsewhere. Messages never repeat a
/// birth date or phone number.
pub fn check_account(a: &Account, before: Option<&Account>) -> Result<(), ResourceError> {
    use crate::roster::normalize;
    let p = &a.profile;
    let old = before.map(|b| &b.profile);
    let changed = |get: fn(&Profile) -> Option<&str>| -> Option<&str> {
        let new = get(p).filter(|v| !v.is_empty())?;
        (old.and_then(get) != Some(new)).then_some(new)
    };
    if a.user_name.trim() != a.user_name {
        return Err(ResourceError(
            "userName must not start or end with spaces".into(),
        ));
    }
    if let Some(e) = changed(|p| Some(p.email.as_str()))
        && !normalize::is_valid_email(e)
    {
        let shown: String = e.chars().take(60).collect();
        return Err(ResourceError(format!(
            "emails: `{shown}` is not a valid email address; write one such as name@example.org"
        )));
    }
    if let Some(d) = changed(|p| p.birth_date.as_deref())
        && let Err(why) = normalize::is_valid_date(d)
    {
        return Err(ResourceError(format!(
            "{EXT_USER}:birthDate {why}; write it as YYYY-MM-DD, e.g. 1972-09-01"
        )));
    }
    if let Some(ph) = changed(|p| p.phone.as_deref())
        && normalize::phone(ph).is_none()
    {
        let digits = normalize::phone_digits(ph).len();
        return Err(ResourceError(format!(
            "phoneNumbers: a phone number has 10 digits (such as 217-852-9634), this one {digits}; \
             put an extension in {EXT_USER}:phoneExtension"
        )));
    }
    if let Some(x) = changed(|p| p.extension.as_deref())
        && !normalize::is_valid_extension(x)
    {
        return Err(ResourceError(format!(
            "{EXT_USER}:phoneExtension must be 1 to 6 digits"
        )));
    }
    if let Some(z) = changed(|p| p.zip.as_deref())
        && !normalize::is_valid_zip(z)
    {
        return Err(ResourceError(format!(
            "{EXT_USER}:postalCode must be 5 digits or ZIP+4 (12345-6789)"
        )));
    }
    Ok(())
}

/// Member references carry the id only: `display` is the provider's to
/// fill in, and clients compare what they sent with what they read back.
fn refs(items: &[Ref]) -> Value {
    Value::Array(items.iter().map(|r| json!({"value": r.id})).collect())
}

/// The Group resource of a group with these members and user managers,
/// without `id` and `meta`.
pub fn group_resource(group: &Group, members: &[Ref], managers: &[Ref]) -> Value {
    let mut ext = Map::new();
    ext.insert("type".into(), json!(group.kind.as_str()));
    if let Some(lwia) = group.lwia {
        ext.insert("lwia".into(), json!(lwia));
    }
    if !managers.is_empty() {
        ext.insert("userManagers".into(), refs(managers));
    }
    json!({
        "schemas": [GROUP, EXT_GROUP],
        "displayName": group.name,
        "members": refs(members),
        EXT_GROUP: ext,
    })
}

/// A group read from a Group resource: its `id`, the group, its member ids
/// and the ids of its user managers.
#[derive(Debug)]
pub struct GroupResource {
    pub id: String,
    pub group: Group,
    pub members: Vec<String>,
    pub managers: Vec<String>,
}

fn ids(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| match m.get("value") {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        })
        .collect()
}

pub fn group_from_resource(v: &Value) -> Result<GroupResource, ResourceError> {
    let name = str_at(v, "displayName")
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| ResourceError("the Group has no displayName".into()))?;
    let ext = v.get(EXT_GROUP);
    let kind = match ext.and_then(|e| str_at(e, "type")) {
        None => GroupType::Organization,
        Some(t) => t.parse().map_err(|_| {
            ResourceError(format!(
                "group type `{}`: use organization or project",
                super::excerpt(t)
            ))
        })?,
    };
    let lwia = match ext.and_then(|e| e.get("lwia")) {
        None | Some(Value::Null) => None,
        Some(n) => Some(
            n.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| ResourceError("`lwia` must be a whole number".into()))?,
        ),
    };
    let id = match v.get("id") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    Ok(GroupResource {
        id,
        group: Group {
            name: name.to_string(),
            kind,
            lwia,
            active: true,
        },
        members: ids(v.get("members")),
        managers: ids(ext.and_then(|e| e.get("userManagers"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile() -> Profile {
        Profile {
            email: "ann.o@example.org".into(),
            first_name: "Ann".into(),
            last_name: "O\"Brien".into(),
            birth_date: Some("1990-05-01".into()),
            phone: Some("555-0100".into()),
            extension: Some("12".into()),
            zip: Some("60601".into()),
        }
    }

    #[test]
    fn users_round_trip() {
        let mut v = user_resource("AOBrien", &profile(), false);
        v["id"] = json!("17");
        let (id, a) = account_from_user(&v).unwrap();
        assert_eq!(id, "17");
        assert_eq!(a.user_name, "AOBrien");
        assert_eq!(a.profile, profile());
        assert!(!a.active);
        // Roles, entitlements and the manager travel beside the profile.
        let mut b = Account::new("AOBrien", profile(), CredentialState::None);
        b.roles = vec!["caseworker".into(), "individual".into()];
        b.entitlements = vec![Entitlement::new("products", "hr:center")];
        put_grants(&mut v, &b);
        put_manager(&mut v, Some(("9", "BMitchell")), Some("http://x/scim/v2"));
        assert_eq!(
            v[EXT_ENTERPRISE]["manager"]["$ref"],
            "http://x/scim/v2/Users/9"
        );
        let (_, a) = account_from_user(&v).unwrap();
        assert_eq!(a.roles, b.roles);
        assert_eq!(a.entitlements, b.entitlements);
        // The manager is read as its id: a displayName can be stale.
        assert_eq!(a.case_manager.as_deref(), Some("9"));
        put_manager(&mut v, None, None);
        assert_eq!(account_from_user(&v).unwrap().1.case_manager, None);
    }

    #[test]
    fn sparse_users_read_with_defaults_and_bad_ones_are_named() {
        let (_, a) = account_from_user(&json!({"userName": "x", "id": 5})).unwrap();
        assert!(a.active);
        assert_eq!(a.profile.email, "");
        assert_eq!(a.roles, ["public-viewer"]);
        let v = json!({"userName": "x", "emails": [
            {"value": "b@x"}, {"value": "a@x", "primary": true}]});
        assert_eq!(account_from_user(&v).unwrap().1.profile.email, "a@x");
        assert!(account_from_user(&json!({"id": "1"})).is_err());
        assert!(account_from_user(&json!({"userName": "x", "active": "yes"})).is_err());
    }

    #[test]
    fn written_users_are_checked_strictly_and_read_leniently() {
        let good = user_resource("AOBrien", &profile(), true);
        assert_eq!(check_user_shape(&good), Ok(()));
        for (attr, value, named) in [
            ("emails", json!("x"), "emails"),
            (
                "emails",
                json!([{"value": "a@x"}, {"value": "b@x"}]),
                "emails",
            ),
            (
                "emails",
                json!([{"value": "a@x", "type": "home"}]),
                "emails.type",
            ),
            ("phoneNumbers", json!(["x"]), "phoneNumbers"),
            ("roles", json!([{"value": 1}]), "roles"),
            ("roles", json!("x"), "roles"),
            ("roles", json!([{"value": " "}]), "empty role"),
            (
                "entitlements",
                json!([{"value": "webcenter"}]),
                "not KIND:VALUE",
            ),
            (
                "entitlements",
                json!([{"value": ":x"}]),
                "`:x` is not KIND:VALUE",
            ),
            (
                "entitlements",
                json!([{"value": "products:x", "type": "dashboards"}]),
                "entitlements.type",
            ),
            (
                EXT_ENTERPRISE,
                json!({"manager": "BMitchell"}),
                "enterprise:2.0:User:manager must be an object",
            ),
            (
                EXT_ENTERPRISE,
                json!({"manager": {"value": 9}}),
                "manager value must be the id",
            ),
            ("name", json!("Bob"), "name"),
            ("userName", json!("x".repeat(MAX_TEXT + 1)), "userName"),
        ] {
            let mut v = good.clone();
            v[attr] = value;
            let e = check_user_shape(&v).unwrap_err().0;
            assert!(e.contains(named), "{e}");
            // What another provider answers is still read.
            if attr != "userName" {
                assert!(account_from_user(&v).is_ok(), "{attr}");
            }
        }
        let mut v = good.clone();
        v[EXT_USER]["birthDate"] = json!(19700101);
        let e = check_user_shape(&v).unwrap_err().0;
        assert!(e.contains("birthDate") && !e.contains("19700101"), "{e}");
        // Several roles and entitlements, the kind given twice alike.
        let mut v = good.clone();
        v["roles"] = json!([{"value": "caseworker"}, {"value": "supervisor"}]);
        v["entitlements"] = json!([{"value": "products:hr:center", "type": "products"}]);
        v[EXT_ENTERPRISE] = json!({"manager": {"value": "12"}});
        assert_eq!(check_user_shape(&v), Ok(()));
        let (_, a) = account_from_user(&v).unwrap();
        assert_eq!(a.entitlements, [Entitlement::new("products", "hr:center")]);
        assert_eq!(a.case_manager.as_deref(), Some("12"));
    }

    #[test]
    fn groups_round_trip_and_bad_types_are_named() {
        let g = Group {
            name: "Agency A".into(),
            kind: GroupType::Project,
            lwia: Some(7),
            active: true,
        };
        let r = |id: &str, d: &str| Ref {
            id: id.into(),
            display: d.into(),
        };
        let v = group_resource(&g, &[r("1", "a"), r("2", "b")], &[r("2", "b")]);
        let back = group_from_resource(&v).unwrap();
        assert_eq!(back.group, g);
        assert_eq!(back.members, ["1", "2"]);
        assert_eq!(back.managers, ["2"]);
        let mut bad = v.clone();
        bad[EXT_GROUP]["type"] = json!("club");
        assert!(group_from_resource(&bad).unwrap_err().0.contains("club"));
    }

    #[test]
    fn control_characters_are_found_with_their_path() {
        assert_eq!(
            control_character_at(&json!({"userName": "ok", "n": [1, true]})),
            None
        );
        assert_eq!(
            control_character_at(&json!({"name": {"givenName": "a\u{0}"}})).as_deref(),
            Some("name.givenName")
        );
        assert_eq!(
            control_character_at(&json!({"emails": [{"value": "x"}, {"value": "\u{1b}[0m"}]}))
                .as_deref(),
            Some("emails[1].value")
        );
        assert_eq!(
            control_character_at(&json!({"a\u{7}": 1})).as_deref(),
            Some("a\\u{7}")
        );
    }

    #[test]
    fn accounts_are_checked_as_partners_are() {
        let account = |p: Profile| Account::new("AOBrien", p, CredentialState::None);
        let good = account(Profile {
            phone: Some("217-852-9634".into()),
            zip: Some("62701".into()),
            ..profile()
        });
        assert_eq!(check_account(&good, None), Ok(()));
        for (change, attr) in [
            (
                (|p: &mut Profile| p.birth_date = Some("1990-02-30".into())) as fn(&mut Profile),
                "birthDate",
            ),
            (|p| p.email = "nobody".into(), "emails"),
            (|p| p.phone = Some("555-0100".into()), "phoneNumbers"),
            (|p| p.zip = Some("6270".into()), "postalCode"),
            (|p| p.extension = Some("1234567".into()), "phoneExtension"),
        ] {
            let mut p = good.profile.clone();
            change(&mut p);
            let bad = account(p);
            let e = check_account(&bad, None).unwrap_err().0;
            assert!(e.contains(attr), "{e}");
            assert!(!e.contains("1990-02-30") && !e.contains("555-0100"), "{e}");
            // A value already stored does not block other changes.
            assert_eq!(check_account(&bad, Some(&bad)), Ok(()));
        }
    }
}
