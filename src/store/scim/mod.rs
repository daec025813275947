//! The SCIM 2.0 client store: `scim+http://HOST[:PORT]/PATH` or
//! `scim+https://…`, with the bearer token from `ROSTER_SCIM_TOKEN`.
//!
//! Planning reads through a cache: each look-up asks only for keys not asked
//! before, in `or` filters of up to [`query::TERMS`] terms, unless listing
//! every user (in pages sorted by `userName`, so paging is stable) takes
//! fewer requests for the roster at hand; after a listing every look-up is
//! answered locally. Names are compared locally on normalized keys, so the
//! name + birth-date rung asks the provider by birth date only.
//!
//! SCIM has no store-wide revision: plans carry revision 0, and staleness is
//! caught per resource instead, by sending each write with `If-Match` and
//! the ETag read (when the provider offers ETags).

mod commit;
pub mod http;
pub mod query;

use super::{
    AuditEntry, Invitation, Limits, MIN_PLAN_KEY_LEN, NewCredential, PLAN_KEY_VAR, Reader, Served,
    Session, Store, StoreError,
};
use crate::domain::{Account, Entitlement, Group, GroupType, Membership, NameDob, Profile};
use crate::roster::normalize::email_key;
use crate::scim::resource::{self, EXT_GROUP, EXT_USER, GroupResource};
use http::{Answer, Client, Failure, Request};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Largest page asked for: providers cap pages anyway (scim2-server at 1,000).
const MAX_PAGE: usize = 1_000;

/// Does this URL name a SCIM store?
pub fn is_scim(url: &str) -> bool {
    url.starts_with("scim+http://") || url.starts_with("scim+https://")
}

/// `http(s)://host[:port]/path` of a `scim+http(s)://` URL.
fn base_of(url: &str) -> Result<String, StoreError> {
    let open = |m: &str| StoreError::Open {
        url: url.to_string(),
        message: m.to_string(),
    };
    let base = url.strip_prefix("scim+").unwrap_or(url);
    let rest = base.split_once("://").map(|(_, r)| r).unwrap_or_default();
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() {
        return Err(open(
            "give the provider's address: scim+https://HOST[:PORT]/PATH",
        ));
    }
    if host.contains('@') {
        // Not `open`: that would print the URL, and the URL holds a secret.
        return Err(StoreError::Invalid(
            "the store URL holds credentials, which do not belong there; put the bearer token in ROSTER_SCIM_TOKEN".into(),
        ));
    }
    if base.contains(['?', '#']) {
        return Err(open(
            "a SCIM store URL has no query or fragment: scim+https://HOST[:PORT]/PATH",
        ));
    }
    Ok(base.trim_end_matches('/').to_string())
}

/// How roster looks things up: `ROSTER_SCIM_LOOKUP=auto|filter|list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lookup {
    /// Whichever takes fewer requests.
    Auto,
    Filter,
    List,
}

/// What the provider says it can do (ServiceProviderConfig, ResourceTypes).
#[derive(Debug, Clone)]
struct Provider {
    page: usize,
    /// Operations per Bulk request, when Bulk is offered.
    bulk: Option<usize>,
    bulk_bytes: usize,
    etag: bool,
    patch: bool,
    password: bool,
    user_ext: bool,
    group_ext: bool,
    /// The enterprise User extension, where case managers (`manager`) go.
    enterprise: bool,
}

#[derive(Debug, Clone)]
struct CachedUser {
    id: String,
    account: Account,
    etag: Option<String>,
}

#[derive(Debug)]
struct CachedGroup {
    res: GroupResource,
    etag: Option<String>,
}

/// What was asked of the server, so no key is asked twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Attr {
    UserName,
    Email,
    BirthDate,
    Id,
    UserNamePrefix,
    GroupName,
}

impl Attr {
    fn filter(self) -> (&'static str, &'static str) {
        match self {
            Attr::UserName => ("userName", "eq"),
            Attr::Email => ("emails.value", "eq"),
            Attr::BirthDate => (
                "urn:roster:params:scim:schemas:extension:roster:2.0:User:birthDate",
                "eq",
            ),
            Attr::Id => ("id", "eq"),
            Attr::UserNamePrefix => ("userName", "sw"),
            Attr::GroupName => ("displayName", "eq"),
        }
    }

    /// Keys of case-insensitive attributes are asked once whatever their case.
    fn key(self, v: &str) -> String {
        match self {
            Attr::UserName | Attr::Email | Attr::UserNamePrefix => v.to_lowercase(),
            Attr::BirthDate | Attr::Id | Attr::GroupName => v.to_string(),
        }
    }
}

/// A connection to one provider and everything read from it.
pub struct Remote {
    url: String,
    client: Client,
    rt: Arc<tokio::runtime::Runtime>,
    provider: Provider,
    mode: Lookup,
    users: HashMap<String, CachedUser>,
    /// Lower-cased user name → id.
    by_name: HashMap<String, String>,
    all_users: bool,
    groups: HashMap<String, CachedGroup>,
    all_groups: bool,
    asked: HashSet<(Attr, String)>,
    totals: HashMap<&'static str, usize>,
    /// Filter requests planning still expects to make (see `expect_lookups`).
    budget: usize,
}

/// Most resources one listing or search reads: far more than any roster
/// holds, and where a provider whose pages never end is stopped.
const MAX_RESOURCES: usize = 2_000_000;

/// The pages of one listing or search, checked as they come: each page must
/// bring a resource not seen before (a provider that ignores `startIndex`
/// would send its first page forever), and a listing ends by
/// [`MAX_RESOURCES`] whatever `totalResults` says.
struct Pages {
    endpoint: String,
    /// Resources read, repeats included: where the next page starts.
    read: usize,
    seen: HashSet<String>,
    items: Vec<Value>,
    limit: usize,
}

impl Pages {
    fn new(endpoint: &str) -> Self {
        Pages {
            endpoint: endpoint.to_string(),
            read: 0,
            seen: HashSet::new(),
            items: Vec::new(),
            limit: MAX_RESOURCES,
        }
    }

    /// Take the page that starts at `start`; false when it is empty (the
    /// listing is over), an error when the provider makes no progress.
    fn add(&mut self, page: &[Value], start: usize) -> Result<bool, String> {
        if page.is_empty() {
            return Ok(false);
        }
        let mut fresh = false;
        for v in page {
            let new = match v.get("id").and_then(Value::as_str) {
                Some(id) => self.seen.insert(id.to_string()),
                None => true,
            };
            if new {
                fresh = true;
                self.items.push(v.clone());
            }
        }
        self.read += page.len();
        let endpoint = &self.endpoint;
        if !fresh {
            return Err(format!(
                "GET {endpoint}: the page at startIndex={start} holds only resources already sent on earlier pages; the provider does not page as SCIM says (RFC 7644 §3.4.2.4), so roster stops reading"
            ));
        }
        if self.items.len() > self.limit {
            return Err(format!(
                "GET {endpoint}: the provider keeps sending pages past {} resources, more than roster reads in one listing; roster stops reading",
                self.limit
            ));
        }
        Ok(true)
    }
}

fn list_resources(v: &Value) -> &[Value] {
    v.get("Resources")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn total_results(v: &Value) -> Option<usize> {
    v.get("totalResults")
        .and_then(Value::as_u64)
        .and_then(|n| usize::try_from(n).ok())
}

fn etag_of(v: &Value) -> Option<String> {
    v.get("meta")
        .and_then(|m| m.get("version"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

impl Remote {
    /// Reach the provider of `store` and ask what it can do.
    fn connect(store: &ScimStore) -> Result<Self, StoreError> {
        let (url, client, rt) = (&store.url, store.client.clone(), store.rt.clone());
        let mode = match std::env::var("ROSTER_SCIM_LOOKUP").as_deref() {
            Ok("filter") => Lookup::Filter,
            Ok("list") => Lookup::List,
            _ => Lookup::Auto,
        };
        let mut r = Remote {
            url: url.to_string(),
            client,
            rt,
            provider: Provider {
                page: 100,
                bulk: None,
                bulk_bytes: 1_048_576,
                etag: false,
                patch: true,
                password: false,
                user_ext: false,
                group_ext: false,
                enterprise: false,
            },
            mode,
            users: HashMap::new(),
            by_name: HashMap::new(),
            all_users: false,
            groups: HashMap::new(),
            all_groups: false,
            asked: HashSet::new(),
            totals: HashMap::new(),
            budget: 0,
        };
        r.discover()?;
        Ok(r)
    }

    fn error(&self, req: &Request, f: &Failure) -> StoreError {
        self.remote(f.describe(&req.what(), &self.client.base))
    }

    /// The body of the answer to `req`: a failure, or an empty answer, is an error.
    fn body(&self, req: &Request, answer: Result<Answer, Failure>) -> Result<Value, StoreError> {
        let answer = answer.map_err(|f| self.error(req, &f))?;
        let empty = || self.remote(format!("{}: the answer is empty", req.what()));
        answer.body.ok_or_else(empty)
    }

    fn get(&self, path: String) -> Result<Value, StoreError> {
        let req = Request::get(path);
        self.body(&req, self.rt.block_on(self.client.send(&req)))
    }

    /// Send these requests, [`http::IN_FLIGHT`] at a time; answers in order.
    fn phase(&self, reqs: &[Request]) -> Vec<Result<Answer, Failure>> {
        if reqs.is_empty() {
            return Vec::new();
        }
        self.rt.block_on(self.client.send_all(reqs.to_vec()))
    }

    fn get_all(&self, paths: Vec<String>) -> Result<Vec<Value>, StoreError> {
        let reqs: Vec<Request> = paths.into_iter().map(Request::get).collect();
        let answers = self.phase(&reqs);
        let bodies = reqs.iter().zip(answers).map(|(req, a)| self.body(req, a));
        bodies.collect()
    }

    /// ServiceProviderConfig and ResourceTypes: page size, Bulk, ETags,
    /// PATCH, passwords, and whether roster's extensions are offered.
    fn discover(&mut self) -> Result<(), StoreError> {
        let config = self.get("/ServiceProviderConfig".into())?;
        let flag = |k: &str| {
            config
                .get(k)
                .and_then(|f| f.get("supported"))
                .and_then(Value::as_bool)
                .unwrap_or(false)
        };
        let num = |k: &str, f: &str| {
            config
                .get(k)
                .and_then(|c| c.get(f))
                .and_then(Value::as_u64)
                .and_then(|n| usize::try_from(n).ok())
                .filter(|n| *n > 0)
        };
        self.provider.page = num("filter", "maxResults").unwrap_or(100).min(MAX_PAGE);
        self.provider.bulk = if flag("bulk") {
            num("bulk", "maxOperations").map(|n| n.min(MAX_PAGE))
        } else {
            None
        };
        if let Some(n) = num("bulk", "maxPayloadSize") {
            self.provider.bulk_bytes = n;
        }
        self.provider.etag = flag("etag");
        // Absent means unknown: try PATCH, and let the provider say no.
        self.provider.patch = config.get("patch").is_none() || flag("patch");
        self.provider.password = flag("changePassword");
        let types = match self.get("/ResourceTypes".into()) {
            Ok(v) => v,
            Err(StoreError::Remote { .. }) => Value::Null,
            Err(e) => return Err(e),
        };
        let list: Vec<&Value> = match &types {
            Value::Array(a) => a.iter().collect(),
            v => list_resources(v).iter().collect(),
        };
        let offers = |schema: &str, ext: &str| {
            list.iter().any(|t| {
                t.get("schema").and_then(Value::as_str) == Some(schema)
                    && t.get("schemaExtensions")
                        .and_then(Value::as_array)
                        .is_some_and(|e| {
                            e.iter()
                                .any(|x| x.get("schema").and_then(Value::as_str) == Some(ext))
                        })
            })
        };
        self.provider.user_ext = offers(resource::USER, EXT_USER);
        self.provider.group_ext = offers(resource::GROUP, EXT_GROUP);
        self.provider.enterprise = offers(resource::USER, resource::EXT_ENTERPRISE);
        Ok(())
    }

    fn keep_user(&mut self, v: &Value) -> Result<String, StoreError> {
        let (id, account) = resource::account_from_user(v)
            .map_err(|e| self.remote(format!("a User the provider returned is not usable: {e}")))?;
        if id.is_empty() {
            let name = &account.user_name;
            return Err(self.remote(format!("the provider returned User `{name}` without an id")));
        }
        self.by_name
            .insert(account.user_name.to_lowercase(), id.clone());
        self.users.insert(
            id.clone(),
            CachedUser {
                id: id.clone(),
                account,
                etag: etag_of(v),
            },
        );
        Ok(id)
    }

    fn keep_group(&mut self, v: &Value) -> Result<(), StoreError> {
        let res = resource::group_from_resource(v).map_err(|e| {
            self.remote(format!("a Group the provider returned is not usable: {e}"))
        })?;
        self.groups.insert(
            res.group.name.clone(),
            CachedGroup {
                res,
                etag: etag_of(v),
            },
        );
        Ok(())
    }

    /// How many resources an endpoint holds (one `count=0` request, once).
    fn total(&mut self, endpoint: &'static str) -> Result<usize, StoreError> {
        if let Some(n) = self.totals.get(endpoint) {
            return Ok(*n);
        }
        let v = self.get(format!("{endpoint}?startIndex=1&count=0"))?;
        let n = total_results(&v).unwrap_or(0);
        self.totals.insert(endpoint, n);
        Ok(n)
    }

    /// Is listing the whole endpoint cheaper than `filters` more filter requests?
    fn cheaper_to_list(
        &mut self,
        endpoint: &'static str,
        filters: usize,
    ) -> Result<bool, StoreError> {
        match self.mode {
            Lookup::Filter => Ok(false),
            Lookup::List => Ok(true),
            Lookup::Auto => {
                let expected = if endpoint == "/Users" {
                    filters.max(self.budget)
                } else {
                    filters
                };
                // One filter request is as cheap as asking for the count.
                if expected <= 1 {
                    return Ok(false);
                }
                let pages = self.total(endpoint)?.div_ceil(self.provider.page);
                Ok(pages <= expected)
            }
        }
    }

    /// Every resource of an endpoint, in pages sorted by `sort` (ids stay
    /// stable across pages), fetched [`http::IN_FLIGHT`] pages at a time.
    /// `totalResults` only says when to stop asking, never how much to ask
    /// for at once: an inflated total costs one window of empty pages.
    fn list(&mut self, endpoint: &'static str, sort: &str) -> Result<Vec<Value>, StoreError> {
        let page = |start: usize, count: usize| {
            format!("{endpoint}?startIndex={start}&count={count}&sortBy={sort}&sortOrder=ascending")
        };
        let mut step = self.provider.page;
        let mut pages = Pages::new(endpoint);
        let total = match self.totals.get(endpoint) {
            Some(0) => return Ok(Vec::new()),
            Some(n) => *n,
            None => {
                let first = self.get(page(1, step))?;
                let n = total_results(&first).unwrap_or(0);
                self.totals.insert(endpoint, n);
                let items = list_resources(&first);
                // A provider may serve smaller pages than asked: use its size.
                if !items.is_empty() {
                    step = step.min(items.len());
                }
                if !pages.add(items, 1).map_err(|m| self.remote(m))? {
                    return Ok(pages.items);
                }
                n
            }
        };
        let mut window = http::IN_FLIGHT;
        'pages: while pages.read < total {
            let starts: Vec<usize> = (0..window)
                .map(|k| pages.read + 1 + k * step)
                .take_while(|s| *s <= total)
                .collect();
            let answers = self.get_all(starts.iter().map(|s| page(*s, step)).collect())?;
            for (p, s) in answers.iter().zip(&starts) {
                let items = list_resources(p);
                if !pages.add(items, *s).map_err(|m| self.remote(m))? {
                    break 'pages;
                }
                if items.len() < step.min(total - s + 1) {
                    // A short page shifts every later one: the rest of this
                    // window was asked at the wrong offsets. Go on one page
                    // at a time from where this one ended.
                    window = 1;
                    continue 'pages;
                }
            }
        }
        Ok(pages.items)
    }

    fn remote(&self, message: String) -> StoreError {
        StoreError::Remote {
            url: self.url.clone(),
            message,
        }
    }

    fn list_users(&mut self) -> Result<(), StoreError> {
        if !self.all_users {
            for v in self.list("/Users", "userName")? {
                self.keep_user(&v)?;
            }
            self.all_users = true;
        }
        Ok(())
    }

    fn list_groups(&mut self) -> Result<(), StoreError> {
        if !self.all_groups {
            for v in self.list("/Groups", "displayName")? {
                self.keep_group(&v)?;
            }
            self.all_groups = true;
        }
        Ok(())
    }

    /// Resources matching any of these filters, every page of each.
    fn search(&mut self, endpoint: &str, filters: &[String]) -> Result<Vec<Value>, StoreError> {
        let step = self.provider.page;
        let path = |f: &str, start: usize| {
            format!(
                "{endpoint}?filter={}&startIndex={start}&count={step}",
                http::encode(f)
            )
        };
        let firsts = self.get_all(filters.iter().map(|f| path(f, 1)).collect())?;
        let mut out = Vec::new();
        for (f, first) in filters.iter().zip(firsts) {
            let total = total_results(&first).unwrap_or(0);
            let mut pages = Pages::new(endpoint);
            let mut more = pages
                .add(list_resources(&first), 1)
                .map_err(|m| self.remote(m))?;
            while more && pages.read < total {
                let start = pages.read + 1;
                let next = self.get(path(f, start))?;
                more = pages
                    .add(list_resources(&next), start)
                    .map_err(|m| self.remote(m))?;
            }
            out.extend(pages.items);
        }
        Ok(out)
    }

    /// Make sure users with these keys (groups, for [`Attr::GroupName`])
    /// are in the cache.
    fn fetch(&mut self, attr: Attr, keys: &[String]) -> Result<(), StoreError> {
        let groups = attr == Attr::GroupName;
        if (groups && self.all_groups) || (!groups && self.all_users) {
            return Ok(());
        }
        let mut seen = HashSet::new();
        let fresh: Vec<&String> = keys
            .iter()
            .filter(|k| {
                let key = attr.key(k);
                let cached = match attr {
                    Attr::UserName => self.by_name.contains_key(&key),
                    Attr::Id => self.users.contains_key(&key),
                    Attr::GroupName => self.groups.contains_key(&key),
                    _ => false,
                };
                !cached && !self.asked.contains(&(attr, key.clone())) && seen.insert(key)
            })
            .collect();
        if fresh.is_empty() {
            return Ok(());
        }
        let (path, op) = attr.filter();
        let terms: Vec<String> = fresh.iter().map(|k| query::term(path, op, k)).collect();
        let filters = query::batches(&terms);
        let endpoint = if groups { "/Groups" } else { "/Users" };
        if self.cheaper_to_list(endpoint, filters.len())? {
            return if groups {
                self.list_groups()
            } else {
                self.list_users()
            };
        }
        if !groups {
            self.budget = self.budget.saturating_sub(filters.len());
        }
        for v in self.search(endpoint, &filters)? {
            if groups {
                self.keep_group(&v)?;
            } else {
                self.keep_user(&v)?;
            }
        }
        for k in fresh {
            self.asked.insert((attr, attr.key(k)));
        }
        Ok(())
    }

    fn cached_where(&self, keep: impl Fn(&Account) -> bool) -> Vec<Account> {
        let mut out: Vec<Account> = self
            .users
            .values()
            .filter(|u| keep(&u.account))
            .map(|u| u.account.clone())
            .collect();
        out.sort_by_key(|a| a.user_name.to_lowercase());
        out
    }

    fn user_by_name(&self, user_name: &str) -> Option<&CachedUser> {
        self.by_name
            .get(&user_name.to_lowercase())
            .and_then(|id| self.users.get(id))
    }

    /// Accounts as read hold their manager's id (the enterprise
    /// `manager.value`): give them its user name instead, reading the
    /// managers not read yet in one look-up. A manager id the provider
    /// does not know is no case manager.
    fn with_manager_names(
        &mut self,
        mut accounts: Vec<Account>,
    ) -> Result<Vec<Account>, StoreError> {
        let ids: Vec<String> = accounts
            .iter()
            .filter_map(|a| a.case_manager.clone())
            .filter(|id| !self.users.contains_key(id))
            .collect();
        if !ids.is_empty() {
            self.fetch(Attr::Id, &ids)?;
        }
        for a in &mut accounts {
            a.case_manager = a
                .case_manager
                .take()
                .and_then(|id| self.users.get(&id))
                .map(|u| u.account.user_name.clone());
        }
        Ok(accounts)
    }
}

/// A SCIM provider opened once: the HTTP client (its keep-alive
/// connections and its request count) and the runtime that drives it, shared
/// by every reader and session of the handle.
pub struct ScimStore {
    url: String,
    client: Client,
    rt: Arc<tokio::runtime::Runtime>,
}

impl ScimStore {
    /// Check the URL and set up the client; nothing is sent until a reader
    /// or session is asked for.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        let base = base_of(url)?;
        let client = Client::new(&base).map_err(|message| StoreError::Open {
            url: url.to_string(),
            message,
        })?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::Open {
                url: url.to_string(),
                message: format!("cannot start the HTTP runtime: {e}"),
            })?;
        Ok(ScimStore {
            url: url.to_string(),
            client,
            rt: Arc::new(rt),
        })
    }
}

impl Store for ScimStore {
    fn url(&self) -> &str {
        &self.url
    }

    fn reader(&self) -> Result<Box<dyn Reader>, StoreError> {
        Ok(Box::new(Remote::connect(self)?))
    }

    /// The provider keeps its own record of who changed what.
    fn begin(&self, _actor: &str, _now: &str) -> Result<Box<dyn Session>, StoreError> {
        Ok(Box::new(ScimSession {
            remote: Remote::connect(self)?,
            ops: Vec::new(),
        }))
    }

    /// A provider cannot keep roster's key: it comes from
    /// [`PLAN_KEY_VAR`], wherever plans are made and applied.
    fn plan_key(&self, _create: bool) -> Result<Option<Vec<u8>>, StoreError> {
        match std::env::var(PLAN_KEY_VAR) {
            Ok(k) if k.trim().len() >= MIN_PLAN_KEY_LEN => Ok(Some(k.trim().as_bytes().to_vec())),
            Ok(k) if !k.trim().is_empty() => Err(StoreError::Invalid(format!(
                "{PLAN_KEY_VAR} must hold at least {MIN_PLAN_KEY_LEN} characters (e.g. `openssl rand -hex 32`)"
            ))),
            _ => Err(StoreError::Invalid(format!(
                "a SCIM store cannot keep the key that seals saved plans: set {PLAN_KEY_VAR} \
                 (at least {MIN_PLAN_KEY_LEN} characters, e.g. `openssl rand -hex 32`) where plans are made and applied"
            ))),
        }
    }

    /// `roster serve` publishes a roster store, not another provider.
    fn served(&self) -> Result<Box<dyn Served>, StoreError> {
        Err(StoreError::UnsupportedUrl(super::display_url(&self.url)))
    }

    fn requests(&self) -> Option<u64> {
        Some(self.client.requests())
    }
}

fn not_kept(what: &str) -> StoreError {
    StoreError::Invalid(format!(
        "{what} is not available on a SCIM store; the provider keeps its own log"
    ))
}

/// Planning against a SCIM provider.
impl Reader for Remote {
    fn url(&self) -> &str {
        &self.url
    }

    /// SCIM has no store-wide revision; writes check ETags instead.
    fn revision(&mut self) -> Result<i64, StoreError> {
        Ok(0)
    }

    fn expect_lookups(&mut self, pinned: usize, partners: usize) {
        let b = |n: usize| n.div_ceil(query::TERMS);
        // Emails, name + birth-date keys, and the members and new names after them.
        self.budget = b(pinned) + 3 * b(partners);
    }

    fn limits(&self) -> Limits {
        let base = &self.client.base;
        Limits {
            profile_extras: (!self.provider.user_ext).then(|| {
                format!(
                    "the SCIM provider at {base} does not offer roster's User extension ({EXT_USER}): birth dates, ZIP codes and phone extensions cannot be stored there, and no account matches by name and birth date"
                )
            }),
            group_extras: (!self.provider.group_ext).then(|| {
                format!(
                    "the SCIM provider at {base} does not offer roster's Group extension ({EXT_GROUP}): group types, LWIAs and user-manager grants cannot be stored there"
                )
            }),
        }
    }

    fn accounts_by_user_name(&mut self, names: &[String]) -> Result<Vec<Account>, StoreError> {
        self.fetch(Attr::UserName, names)?;
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for n in names {
            if let Some(u) = self.user_by_name(n)
                && seen.insert(u.id.clone())
            {
                out.push(u.account.clone());
            }
        }
        self.with_manager_names(out)
    }

    fn accounts_by_email(&mut self, emails: &[String]) -> Result<Vec<Account>, StoreError> {
        self.fetch(Attr::Email, emails)?;
        let want: HashSet<String> = emails.iter().map(|e| email_key(e).into_owned()).collect();
        let found = self.cached_where(|a| want.contains(email_key(&a.profile.email).as_ref()));
        self.with_manager_names(found)
    }

    fn accounts_by_name_dob(&mut self, keys: &[NameDob]) -> Result<Vec<Account>, StoreError> {
        if keys.is_empty() || !self.provider.user_ext {
            // Without the extension no account has a birth date to match.
            return Ok(Vec::new());
        }
        let dates: Vec<String> = keys.iter().map(|k| k.birth_date.clone()).collect();
        self.fetch(Attr::BirthDate, &dates)?;
        let want: HashSet<&NameDob> = keys.iter().collect();
        let found = self.cached_where(|a| {
            a.profile.birth_date.as_deref().is_some_and(|d| {
                want.contains(&NameDob::new(
                    &a.profile.first_name,
                    &a.profile.last_name,
                    d,
                ))
            })
        });
        self.with_manager_names(found)
    }

    fn user_names_like(&mut self, bases: &[String]) -> Result<Vec<String>, StoreError> {
        self.fetch(Attr::UserNamePrefix, bases)?;
        let bases: Vec<String> = bases.iter().map(|b| b.to_lowercase()).collect();
        let mut out: Vec<String> = self
            .by_name
            .keys()
            .filter(|n| {
                bases.iter().any(|b| {
                    n.strip_prefix(b.as_str())
                        .is_some_and(|rest| rest.bytes().all(|c| c.is_ascii_digit()))
                })
            })
            .cloned()
            .collect();
        out.sort();
        Ok(out)
    }

    fn groups(&mut self, names: Option<&[String]>) -> Result<Vec<Group>, StoreError> {
        match names {
            None => {
                self.list_groups()?;
                let mut out: Vec<Group> =
                    self.groups.values().map(|g| g.res.group.clone()).collect();
                out.sort_by(|a, b| a.name.cmp(&b.name));
                Ok(out)
            }
            Some(names) => {
                self.fetch(Attr::GroupName, names)?;
                Ok(names
                    .iter()
                    .filter_map(|n| self.groups.get(n.as_str()))
                    .map(|g| g.res.group.clone())
                    .collect())
            }
        }
    }

    fn memberships(&mut self, groups: &[String]) -> Result<Vec<Membership>, StoreError> {
        self.fetch(Attr::GroupName, groups)?;
        let ids: Vec<String> = groups
            .iter()
            .filter_map(|n| self.groups.get(n.as_str()))
            .flat_map(|g| g.res.members.iter().cloned())
            .collect();
        self.fetch(Attr::Id, &ids)?;
        let mut out = Vec::new();
        for name in groups {
            let Some(g) = self.groups.get(name.as_str()) else {
                continue;
            };
            let managers: HashSet<&str> = g.res.managers.iter().map(String::as_str).collect();
            let mut seen = HashSet::new();
            for id in &g.res.members {
                // Members whose user is gone are not memberships.
                if let Some(u) = self.users.get(id)
                    && seen.insert(id)
                {
                    out.push(Membership {
                        group: name.clone(),
                        user_name: u.account.user_name.clone(),
                        user_manager: managers.contains(id.as_str()),
                    });
                }
            }
        }
        Ok(out)
    }

    fn active_accounts(&mut self) -> Result<u64, StoreError> {
        Ok(self.all_accounts()?.iter().filter(|a| a.active).count() as u64)
    }

    fn in_other_groups(
        &mut self,
        user_names: &[String],
        groups: &[String],
    ) -> Result<Vec<String>, StoreError> {
        self.fetch(Attr::UserName, user_names)?;
        self.list_groups()?;
        let managed: HashSet<&str> = groups.iter().map(String::as_str).collect();
        let elsewhere: HashSet<&str> = self
            .groups
            .values()
            .filter(|g| !managed.contains(g.res.group.name.as_str()))
            .flat_map(|g| g.res.members.iter().map(String::as_str))
            .collect();
        Ok(user_names
            .iter()
            .filter(|n| {
                self.by_name
                    .get(&n.to_lowercase())
                    .is_some_and(|id| elsewhere.contains(id.as_str()))
            })
            .cloned()
            .collect())
    }

    fn all_accounts(&mut self) -> Result<Vec<Account>, StoreError> {
        self.list_users()?;
        let all = self.cached_where(|_| true);
        self.with_manager_names(all)
    }

    fn audit(&mut self, _since: Option<&str>) -> Result<Vec<AuditEntry>, StoreError> {
        Err(not_kept("the audit log"))
    }

    fn invitations(&mut self) -> Result<Vec<Invitation>, StoreError> {
        Err(not_kept("the list of invitations"))
    }
}

/// One change, queued until commit.
#[derive(Debug)]
enum Op {
    CreateGroup {
        name: String,
        kind: GroupType,
        lwia: Option<u32>,
    },
    CreateAccount {
        user_name: String,
        profile: Profile,
        password: Option<String>,
        /// Signed in by an identity provider: no password, no invitation.
        sso: bool,
    },
    SetActive {
        user_name: String,
        active: bool,
    },
    UpdateProfile {
        user_name: String,
        profile: Profile,
        fields: Vec<String>,
    },
    Member {
        user_name: String,
        group: String,
        change: MemberChange,
    },
    /// `userName` changed from `user_name` to `new_name`.
    Rename {
        user_name: String,
        new_name: String,
    },
    /// A role or entitlement granted (`grant`) or revoked: part of the
    /// User's creation when this session creates it, else a PATCH of its
    /// `roles` or `entitlements`.
    Grant {
        user_name: String,
        what: Grant,
        grant: bool,
    },
    /// The case manager set (by user name) or cleared: a PATCH of the
    /// enterprise `manager`, after every account is created.
    CaseManager {
        user_name: String,
        manager: Option<String>,
    },
}

/// What a [`Op::Grant`] grants: a role, or an entitlement (core
/// `entitlements`: `value` `KIND:VALUE`, `type` `KIND`).
#[derive(Debug)]
enum Grant {
    Role(String),
    Entitlement(Entitlement),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MemberChange {
    Add { user_manager: bool },
    Manager(bool),
    Remove,
}

/// Applying to a SCIM provider: the changes are queued, and written on
/// commit, action by action (SPEC §8).
pub struct ScimSession {
    remote: Remote,
    ops: Vec<Op>,
}

impl ScimSession {
    fn push(&mut self, op: Op) -> Result<(), StoreError> {
        self.ops.push(op);
        Ok(())
    }

    fn member(
        &mut self,
        user_name: &str,
        group: &str,
        change: MemberChange,
    ) -> Result<(), StoreError> {
        self.push(Op::Member {
            user_name: user_name.to_string(),
            group: group.to_string(),
            change,
        })
    }
}

impl Session for ScimSession {
    fn revision(&mut self) -> Result<i64, StoreError> {
        Ok(0)
    }

    fn create_group(
        &mut self,
        name: &str,
        kind: GroupType,
        lwia: Option<u32>,
    ) -> Result<(), StoreError> {
        let name = name.to_string();
        self.push(Op::CreateGroup { name, kind, lwia })
    }

    /// The account's roles go as grants after its create.
    fn create_account_with_roles(
        &mut self,
        user_name: &str,
        profile: &Profile,
        roles: &[String],
        credential: NewCredential,
    ) -> Result<(), StoreError> {
        let sso = matches!(credential, NewCredential::Sso);
        let password = match credential {
            NewCredential::Password { password, .. } => Some(password),
            _ => None,
        };
        self.push(Op::CreateAccount {
            user_name: user_name.to_string(),
            profile: profile.clone(),
            password,
            sso,
        })?;
        for r in roles {
            self.grant_role(user_name, r)?;
        }
        Ok(())
    }

    fn set_active(&mut self, user_name: &str, active: bool) -> Result<(), StoreError> {
        let user_name = user_name.to_string();
        self.push(Op::SetActive { user_name, active })
    }

    fn update_profile(
        &mut self,
        user_name: &str,
        profile: &Profile,
        fields: &[String],
    ) -> Result<(), StoreError> {
        self.push(Op::UpdateProfile {
            user_name: user_name.to_string(),
            profile: profile.clone(),
            fields: fields.to_vec(),
        })
    }

    fn add_membership(
        &mut self,
        user: &str,
        group: &str,
        user_manager: bool,
    ) -> Result<(), StoreError> {
        self.member(user, group, MemberChange::Add { user_manager })
    }

    fn set_user_manager(&mut self, user: &str, group: &str, grant: bool) -> Result<(), StoreError> {
        self.member(user, group, MemberChange::Manager(grant))
    }

    fn remove_membership(&mut self, user: &str, group: &str) -> Result<(), StoreError> {
        self.member(user, group, MemberChange::Remove)
    }

    fn rename_account(&mut self, user_name: &str, new_name: &str) -> Result<(), StoreError> {
        self.push(Op::Rename {
            user_name: user_name.to_string(),
            new_name: new_name.to_string(),
        })
    }

    fn change_grant(
        &mut self,
        user_name: &str,
        what: super::Grant,
        grant: bool,
    ) -> Result<(), StoreError> {
        let what = match what {
            super::Grant::Role(role) => Grant::Role(role.to_string()),
            super::Grant::Entitlement(e) => Grant::Entitlement(e.clone()),
        };
        self.push(Op::Grant {
            user_name: user_name.to_string(),
            what,
            grant,
        })
    }

    fn set_case_manager(
        &mut self,
        user_name: &str,
        case_manager: Option<&str>,
    ) -> Result<(), StoreError> {
        self.push(Op::CaseManager {
            user_name: user_name.to_string(),
            manager: case_manager.map(str::to_string),
        })
    }

    fn unsupported(&self, what: &str) -> StoreError {
        StoreError::Invalid(format!(
            "the SCIM store {} cannot keep {what}; nothing was written",
            super::display_url(&self.remote.url)
        ))
    }

    fn commit(self: Box<Self>) -> Result<i64, StoreError> {
        let ScimSession { remote, ops } = *self;
        commit::run(remote, ops)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A provider on 127.0.0.1 that answers every request with `{}` and
    /// closes: enough for discovery.
    fn bare_provider() -> String {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for mut c in listener.incoming().flatten() {
                let mut seen = Vec::new();
                let mut buf = [0u8; 1024];
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match c.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = c.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
                );
            }
        });
        format!("scim+http://127.0.0.1:{port}/scim/v2")
    }

    /// Each handle counts the requests it sent, and only those: two stores
    /// open in one process do not add up.
    #[test]
    fn each_handle_counts_its_own_requests() {
        let url = bare_provider();
        let a = ScimStore::open(&url).unwrap();
        let b = ScimStore::open(&url).unwrap();
        assert_eq!((a.requests(), b.requests()), (Some(0), Some(0)));
        // Discovery: ServiceProviderConfig and ResourceTypes.
        drop(a.reader().unwrap());
        assert_eq!((a.requests(), b.requests()), (Some(2), Some(0)));
        drop(a.begin("t", "2026-01-01T00:00:00Z").unwrap());
        drop(b.reader().unwrap());
        assert_eq!((a.requests(), b.requests()), (Some(4), Some(2)));
    }

    /// roster sends a provider a password only when it creates an account:
    /// a session asked to set one refuses, sending nothing.
    #[test]
    fn a_password_for_an_existing_account_is_refused() {
        let url = bare_provider();
        let store = ScimStore::open(&url).unwrap();
        let mut s = store.begin("t", "2026-01-01T00:00:00Z").unwrap();
        let sent = store.requests();
        let e = s
            .set_password("ann", "$argon2id$x")
            .unwrap_err()
            .to_string();
        assert!(
            e.ends_with("cannot keep passwords set by an administrator; nothing was written"),
            "{e}"
        );
        assert_eq!(store.requests(), sent);
    }

    fn page(ids: std::ops::Range<usize>) -> Vec<Value> {
        ids.map(|i| serde_json::json!({"id": i.to_string()}))
            .collect()
    }

    #[test]
    fn pages_that_never_end_are_cut_off() {
        // Fresh ids forever: stopped at the limit.
        let mut p = Pages::new("/Users");
        p.limit = 250;
        let mut start = 1;
        let err = loop {
            match p.add(&page(start..start + 100), start) {
                Ok(more) => assert!(more),
                Err(e) => break e,
            }
            start += 100;
            assert!(start < 10_000, "never stopped");
        };
        assert!(err.contains("past 250 resources"), "{err}");
        // The same page forever: stopped at the first repeat.
        let mut p = Pages::new("/Groups");
        assert_eq!(p.add(&page(0..3), 1), Ok(true));
        let err = p.add(&page(0..3), 4).unwrap_err();
        assert!(
            err.contains("GET /Groups") && err.contains("startIndex=4"),
            "{err}"
        );
        // Overlap is dropped, an empty page ends the listing.
        let mut p = Pages::new("/Users");
        assert_eq!(p.add(&page(0..3), 1), Ok(true));
        assert_eq!(p.add(&page(2..5), 4), Ok(true));
        assert_eq!(p.add(&[], 7), Ok(false));
        assert_eq!((p.items.len(), p.read), (5, 6));
    }

    #[test]
    fn urls_name_a_provider_and_nothing_else() {
        assert_eq!(
            base_of("scim+http://127.0.0.1:8080/v2/").unwrap(),
            "http://127.0.0.1:8080/v2"
        );
        assert_eq!(
            base_of("scim+https://idp.example.org/scim/v2").unwrap(),
            "https://idp.example.org/scim/v2"
        );
        assert!(base_of("scim+https:///v2").is_err());
        let e = base_of("scim+https://admin:secret@idp.example.org/v2").unwrap_err();
        assert!(e.to_string().contains("ROSTER_SCIM_TOKEN"), "{e}");
        assert!(!e.to_string().contains("secret"), "{e}");
        assert!(base_of("scim+https://idp.example.org/v2?x=1").is_err());
    }
}
