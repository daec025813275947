//! Planning and applying at scale, each figure next to its floor measured in
//! the same run. Not a test: `cargo bench --bench plan` (or
//! `scripts/bench-plan.sh`) prints a table.
//!
//! Cases:
//! 1. plan 100,000 partners / 5,000 groups / 300,000 memberships against a
//!    store of 1,000,000 accounts;
//! 2. plan 1,000 partners against the same store;
//! 3. apply 100,000 account creations + 300,000 memberships onto an empty store;
//! 4. case 1 with roles, entitlements and a case manager on every partner
//!    (SPEC §9), against a copy of the store whose accounts hold them; its
//!    figure is compared with case 1's of the same run (target: 1.2x).
//!    `BENCH_ONLY=access` runs cases 1 and 4 alone.
//!
//! Floors:
//! (a) reading and checking the roster alone (`load::discover` + `load::read`
//!     + `check::check`);
//! (b) the partners' accounts read by email with one plain prepared statement
//!     (`SELECT … FROM accounts WHERE email_key = ?1`), in one read transaction;
//! (c) the same groups, accounts and memberships inserted with plain prepared
//!     statements in one transaction into a fresh store of the same schema,
//!     in the order the plan lists them (so with the same ids), without the
//!     invitations, outbox and audit rows an apply also writes.
//!
//! The rosters are generated exactly as `examples/gen-roster.rs` generates
//! them. The store is seeded directly with SQL (not through `apply`), so that
//! partners p0…p99999 of the large roster match their accounts by email,
//! about 100 of them are missing (creates), 500 memberships are missing
//! (adds), 500 are extra (removes), 100 grants and 100 revocations differ,
//! and 900,000 more accounts sit in 9,000 groups no roster declares.
//!
//! Every measurement runs in a fresh child process (this binary, run again
//! with `--worker`), so the peak RSS it reports (VmHWM) is that case's own.
//! Each figure is the best of `BENCH_RUNS` runs (default 3).

use roster::app::apply::{self, Onboarding};
use roster::check;
use roster::plan::compute::{self, Desired};
use roster::plan::{Note, Plan};
use roster::resolve;
use roster::roster::load;
use roster::roster::normalize;
use roster::store::{
    self, Account, AuditEntry, Group, Invitation, Membership, NameDob, Reader, StoreError,
};
use rusqlite::{Connection, OpenFlags, params};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Timestamp of every seeded row and of the apply.
const NOW: &str = "2026-01-01T00:00:00Z";
const LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// Names as `examples/gen-roster.rs` draws them.
const FIRST: [&str; 16] = [
    "Mandy", "Ashley", "Jordan", "José", "Priya", "Chen", "Fatima", "Liam", "Olga", "Kwame",
    "Sofia", "Mateo", "Aisha", "Noah", "Yuki", "Grace",
];
const LAST: [&str; 16] = [
    "McCray", "Wrigley", "Jones", "Núñez", "Raman", "Li", "Haddad", "Murphy", "Petrova", "Mensah",
    "Rossi", "García", "Khan", "Smith", "Tanaka", "O'Neil",
];

/// The size of a generated roster (the arguments of gen-roster).
#[derive(Clone, Copy)]
struct Shape {
    partners: usize,
    groups: usize,
    memberships: usize,
}

/// Case 1 and the apply case.
const BIG: Shape = Shape {
    partners: 100_000,
    groups: 5_000,
    memberships: 300_000,
};
/// Case 2: its 17 groups are the big roster's first 17, so the plan is small
/// too (group 16 wraps around to p0…p19: 20 adds and 20 removes).
const SMALL: Shape = Shape {
    partners: 1_000,
    groups: 17,
    memberships: 1_020,
};
/// Accounts in the seeded store.
const STORE_ACCOUNTS: usize = 1_000_000;
/// Accounts no roster mentions are members of groups of this size that no
/// roster declares.
const LEGACY_GROUP_SIZE: usize = 100;

impl Shape {
    fn per_group(self) -> usize {
        self.memberships / self.groups.max(1)
    }

    /// Members of group `g` as gen-roster lays them out: consecutive
    /// partners, wrapping; the first is a user manager.
    fn members(self, g: usize) -> impl Iterator<Item = (usize, bool)> {
        let n = self.partners.max(1);
        let start = (g * self.per_group()) % n;
        (0..self.per_group().min(self.partners)).map(move |k| ((start + k) % n, k == 0))
    }
}

/// gen-roster's xorshift: partner `p` is drawn from the `p`-th number.
struct Rng(u64);

impl Rng {
    fn new() -> Self {
        Rng(0x2545_f491_4f6c_dd1d)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// One person, as gen-roster writes partner `p`.
struct Person {
    first: &'static str,
    last: &'static str,
    birth_date: String,
    /// As written in the roster: `217-123-4567`.
    phone: String,
    zip: String,
}

impl Person {
    fn new(p: usize, r: u64) -> Self {
        Person {
            first: FIRST[(r % 16) as usize],
            last: LAST[((r >> 8) % 16) as usize],
            birth_date: format!(
                "{}-{:02}-{:02}",
                1950 + (r >> 16) % 50,
                1 + (r >> 24) % 12,
                1 + (r >> 32) % 28
            ),
            phone: format!("217-{:03}-{:04}", (r >> 40) % 1000, p % 10_000),
            zip: format!("{:05}", 60_000 + (r >> 20) % 3_000),
        }
    }

    fn key(&self) -> NameDob {
        NameDob::new(self.first, self.last, &self.birth_date)
    }
}

fn email(p: usize) -> String {
    format!("p{p}@example.org")
}

fn agency(g: usize) -> String {
    format!("Agency {g:05}")
}

fn url_of(path: &Path) -> String {
    format!("sqlite:{}", path.display())
}

/// Writes the roster `gen-roster PARTNERS GROUPS MEMBERSHIPS` prints, byte for
/// byte; with `access`, every partner also has roles, entitlements and (but
/// every tenth) a case manager, as [`Access`] draws them (SPEC §9).
fn write_roster(path: &Path, s: Shape, access: bool) -> Res<()> {
    let mut w = BufWriter::new(File::create(path)?);
    writeln!(w, "version: 1")?;
    writeln!(w, "groups:")?;
    for g in 0..s.groups {
        writeln!(w, "  - name: {}", agency(g))?;
        writeln!(w, "    lwia: {}", g % 30)?;
        writeln!(w, "    members:")?;
        for (p, user_manager) in s.members(g) {
            if user_manager {
                writeln!(
                    w,
                    "      - email: p{p}@example.org\n        user_manager: true"
                )?;
            } else {
                writeln!(w, "      - p{p}@example.org")?;
            }
        }
    }
    writeln!(w, "partners:")?;
    let mut rng = Rng::new();
    for p in 0..s.partners {
        let x = Person::new(p, rng.next());
        writeln!(w, "  - email: {}", email(p))?;
        writeln!(w, "    first_name: {}", x.first)?;
        writeln!(w, "    last_name: \"{}\"", x.last)?;
        writeln!(w, "    birth_date: {}", x.birth_date)?;
        writeln!(w, "    phone: \"{}\"", x.phone)?;
        writeln!(w, "    zip: \"{}\"", x.zip)?;
        if access {
            Access::of(p).write(&mut w)?;
        }
    }
    writeln!(w, "policy:\n  min_user_managers: 1")?;
    if access {
        writeln!(w, "{}", Access::POLICY)?;
    }
    w.flush()?;
    Ok(())
}

/// Partners of the big roster that have no account in the store: one in a
/// thousand, among those whose name + birth date no other partner shares
/// (otherwise the ladder would rightly ask for a confirmation).
fn creates() -> HashSet<usize> {
    let mut rng = Rng::new();
    let keys: Vec<NameDob> = (0..BIG.partners)
        .map(|p| Person::new(p, rng.next()).key())
        .collect();
    let mut count: HashMap<&NameDob, u32> = HashMap::new();
    for k in &keys {
        *count.entry(k).or_default() += 1;
    }
    (0..BIG.partners)
        .filter(|&p| p % 1000 == 999 && count[&keys[p]] == 1)
        .collect()
}

/// What the access variant (SPEC §9) gives partner `p` in the roster, and
/// what its account holds in the store. About one partner in a thousand
/// differs for each kind of change: a role to grant, a dashboard to grant,
/// a product to revoke, a case manager to set.
struct Access {
    p: usize,
}

impl Access {
    const POLICY: &str = "  roles: [public-viewer, individual, caseworker, supervisor]
  entitlements:
    products: [webcenter, hrcenter, job-board]
    dashboards: [caseload, outcomes]";

    fn of(p: usize) -> Self {
        Access { p }
    }

    /// The roster's roles; the store lacks `supervisor`.
    fn roles(&self) -> &'static [&'static str] {
        if self.p % 1000 == 101 {
            &["public-viewer", "caseworker", "supervisor"]
        } else {
            &["public-viewer", "caseworker"]
        }
    }

    /// The roster's entitlements: (kind, value). The store lacks `outcomes`.
    fn entitlements(&self) -> Vec<(&'static str, &'static str)> {
        let mut v = vec![
            ("products", "webcenter"),
            ("products", "job-board"),
            ("dashboards", "caseload"),
        ];
        if self.p % 1000 == 202 {
            v.push(("dashboards", "outcomes"));
        }
        v
    }

    /// What the store holds beyond the roster: a product to revoke.
    fn extra_in_store(&self) -> Option<(&'static str, &'static str)> {
        (self.p % 1000 == 303).then_some(("products", "hrcenter"))
    }

    /// The partner overseeing this one: the first of each ten.
    fn case_manager(&self) -> Option<usize> {
        (!self.p.is_multiple_of(10)).then_some(self.p - self.p % 10)
    }

    /// Whether the store already has the case manager.
    fn case_manager_in_store(&self) -> bool {
        self.p % 1000 != 404
    }

    fn write(&self, w: &mut impl Write) -> std::io::Result<()> {
        writeln!(w, "    roles: [{}]", self.roles().join(", "))?;
        writeln!(w, "    entitlements:")?;
        let e = self.entitlements();
        for kind in ["products", "dashboards"] {
            let values: Vec<&str> = e.iter().filter(|x| x.0 == kind).map(|x| x.1).collect();
            writeln!(w, "      {kind}: [{}]", values.join(", "))?;
        }
        if let Some(m) = self.case_manager() {
            writeln!(w, "    case_manager: {}", email(m))?;
        }
        Ok(())
    }
}

/// A copy of the seeded store at `from`, its partners' accounts given the
/// access variant's roles, entitlements and case managers with plain SQL.
fn seed_access(from: &Path, to: &Path) -> Res<usize> {
    std::fs::copy(from, to)?;
    let mut conn = Connection::open(to)?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    let tx = conn.transaction()?;
    let mut rows = 0;
    {
        let mut find = tx.prepare("SELECT id FROM accounts WHERE email_key = ?1")?;
        let ids: Vec<Option<i64>> = (0..BIG.partners)
            .map(|p| {
                find.query_row([normalize::email_key(&email(p))], |r| r.get(0))
                    .ok()
            })
            .collect();
        let mut role =
            tx.prepare("INSERT INTO account_roles (account_id, role) VALUES (?1, ?2)")?;
        let mut ent = tx.prepare(
            "INSERT INTO account_entitlements (account_id, kind, value) VALUES (?1, ?2, ?3)",
        )?;
        let mut manager = tx.prepare("UPDATE accounts SET case_manager_id = ?1 WHERE id = ?2")?;
        for (p, id) in ids.iter().enumerate() {
            let Some(id) = *id else { continue };
            let a = Access::of(p);
            for r in a
                .roles()
                .iter()
                .filter(|r| !["public-viewer", "supervisor"].contains(r))
            {
                rows += role.execute(params![id, r])?;
            }
            for (k, v) in a.entitlements().into_iter().filter(|e| e.1 != "outcomes") {
                rows += ent.execute(params![id, k, v])?;
            }
            if let Some((k, v)) = a.extra_in_store() {
                rows += ent.execute(params![id, k, v])?;
            }
            if let Some(m) = a.case_manager().filter(|_| a.case_manager_in_store())
                && let Some(mid) = ids[m]
            {
                rows += manager.execute(params![mid, id])?;
            }
        }
    }
    tx.commit()?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(rows)
}

/// User names as `roster` generates them: base, base2, base3, … per base.
#[derive(Default)]
struct UserNames(HashMap<String, u32>);

impl UserNames {
    fn next(&mut self, first: &str, last: &str) -> String {
        let base = resolve::user_name_base(first, last);
        let n = self.0.entry(base.clone()).or_default();
        *n += 1;
        if *n == 1 { base } else { format!("{base}{n}") }
    }
}

const INSERT_ACCOUNT: &str = "INSERT INTO accounts (user_name, user_key, email, email_key, \
     first_name, last_name, first_key, last_key, birth_date, phone, extension, zip, role, active, \
     credential, password_hash, created_at, updated_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, NULL, ?11, '', 1, 'invited', \
     NULL, ?12, ?12)";
/// Every account seeded holds the one role a roster without a catalog gives.
const GRANT_ROLES: &str =
    "INSERT INTO account_roles (account_id, role) SELECT id, 'public-viewer' FROM accounts";
const INSERT_GROUP: &str = "INSERT INTO groups (id, name, type, lwia, active, created_at) \
     VALUES (?1, ?2, 'organization', ?3, 1, ?4)";
const INSERT_MEMBERSHIP: &str =
    "INSERT INTO memberships (group_id, account_id, user_manager) VALUES (?1, ?2, ?3)";

/// One row of `accounts`, every value computed before any clock starts.
struct AccountRow {
    user_name: String,
    email: String,
    first: &'static str,
    last: &'static str,
    first_key: String,
    last_key: String,
    birth_date: String,
    phone: String,
    zip: String,
}

impl AccountRow {
    fn new(p: usize, x: Person, names: &mut UserNames) -> Self {
        AccountRow {
            user_name: names.next(x.first, x.last),
            email: email(p),
            first: x.first,
            last: x.last,
            first_key: normalize::name_key(x.first),
            last_key: normalize::name_key(x.last),
            phone: normalize::phone(&x.phone).unwrap_or_default(),
            birth_date: x.birth_date,
            zip: x.zip,
        }
    }

    fn insert(&self, stmt: &mut rusqlite::Statement) -> rusqlite::Result<usize> {
        stmt.execute(params![
            self.user_name,
            self.user_name.to_lowercase(),
            self.email,
            normalize::email_key(&self.email),
            self.first,
            self.last,
            self.first_key,
            self.last_key,
            self.birth_date,
            self.phone,
            self.zip,
            NOW
        ])
    }
}

/// What the seeded store holds.
struct Seeded {
    accounts: usize,
    groups: usize,
    memberships: usize,
    creates: usize,
}

/// The store at `url`, opened as `roster` opens it.
fn open_store(url: &str) -> Res<Box<dyn store::Store>> {
    let options = store::Options {
        lock_timeout: LOCK_TIMEOUT,
        ..store::Options::default()
    };
    Ok(store::open(url, options)?)
}

/// Seed the 1M-account store at `path`: schema through a committed empty
/// session, rows with plain SQL in one transaction.
fn seed(path: &Path) -> Res<Seeded> {
    open_store(&url_of(path))?.begin("bench", NOW)?.commit()?;
    let creates = creates();
    let mut rng = Rng::new();
    let create_keys: HashSet<NameDob> = (0..BIG.partners)
        .map(|p| (p, rng.next()))
        .filter(|(p, _)| creates.contains(p))
        .map(|(p, r)| Person::new(p, r).key())
        .collect();
    let people = STORE_ACCOUNTS + creates.len();
    let legacy_groups = (people - BIG.partners).div_ceil(LEGACY_GROUP_SIZE);

    let mut conn = Connection::open(path)?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    conn.pragma_update(None, "cache_size", -512 * 1024)?;
    let tx = conn.transaction()?;
    // Account id of each person; 0: not in the store.
    let mut ids = vec![0i64; people];
    let mut memberships = 0;
    {
        let mut stmt = tx.prepare(INSERT_ACCOUNT)?;
        let mut names = UserNames::default();
        let mut rng = Rng::new();
        for (p, id) in ids.iter_mut().enumerate() {
            let mut x = Person::new(p, rng.next());
            if creates.contains(&p) {
                continue;
            }
            // No stranger may look like a partner to be created (year 2000
            // is never drawn).
            if p >= BIG.partners && create_keys.contains(&x.key()) {
                x.birth_date.replace_range(..4, "2000");
            }
            AccountRow::new(p, x, &mut names).insert(&mut stmt)?;
            *id = tx.last_insert_rowid();
        }
        tx.execute(GRANT_ROLES, [])?;

        let mut stmt = tx.prepare(INSERT_GROUP)?;
        for g in 0..BIG.groups {
            stmt.execute(params![g as i64 + 1, agency(g), (g % 30) as i64, NOW])?;
        }
        for l in 0..legacy_groups {
            let id = (BIG.groups + l) as i64 + 1;
            stmt.execute(params![id, format!("Legacy {l:05}"), None::<i64>, NOW])?;
        }

        let mut stmt = tx.prepare(INSERT_MEMBERSHIP)?;
        let last = BIG.per_group() - 1;
        for g in 0..BIG.groups {
            let group = g as i64 + 1;
            for (k, (p, user_manager)) in BIG.members(g).enumerate() {
                if ids[p] == 0 || (g % 10 == 0 && k == last) {
                    continue; // a create, or a membership to add
                }
                let user_manager = match (g % 50, k) {
                    (1, 0) => false, // to grant
                    (2, 1) => true,  // to revoke
                    _ => user_manager,
                };
                stmt.execute(params![group, ids[p], user_manager])?;
                memberships += 1;
            }
            if g % 10 == 5 {
                // A stranger in a managed group: to remove.
                stmt.execute(params![group, ids[BIG.partners + g], false])?;
                memberships += 1;
            }
        }
        for (i, &id) in ids.iter().enumerate().skip(BIG.partners) {
            let group = (BIG.groups + (i - BIG.partners) / LEGACY_GROUP_SIZE) as i64 + 1;
            stmt.execute(params![group, id, false])?;
            memberships += 1;
        }
    }
    tx.commit()?;
    // As a long-lived store would be: everything in the main file.
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(Seeded {
        accounts: ids.iter().filter(|&&id| id != 0).count(),
        groups: BIG.groups + legacy_groups,
        memberships,
        creates: creates.len(),
    })
}

// ---------------------------------------------------------------------------
// Workers: one measurement each, in a fresh process. They print
// `name<TAB>seconds<TAB>note` lines; `total` is the figure.

fn vm_hwm_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn emit(name: &str, secs: f64, note: &str) {
    println!("{name}\t{secs:.6}\t{note}");
}

fn emit_rss() {
    if let Some(kib) = vm_hwm_kib() {
        emit("rss_kib", kib as f64, "");
    }
}

/// Time per store call made during `gather`.
#[derive(Default)]
struct Stat {
    secs: f64,
    calls: usize,
    keys: usize,
    rows: usize,
}

/// A [`Reader`] that times the reader it wraps.
struct Timed {
    inner: Box<dyn Reader>,
    stats: BTreeMap<&'static str, Stat>,
}

impl Timed {
    fn time<T>(
        &mut self,
        name: &'static str,
        keys: usize,
        f: impl FnOnce(&mut dyn Reader) -> Result<Vec<T>, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let start = Instant::now();
        let out = f(self.inner.as_mut());
        let s = self.stats.entry(name).or_default();
        s.secs += start.elapsed().as_secs_f64();
        s.calls += 1;
        s.keys += keys;
        s.rows += out.as_ref().map_or(0, Vec::len);
        out
    }
}

impl Reader for Timed {
    fn url(&self) -> &str {
        self.inner.url()
    }
    fn active_accounts(&mut self) -> Result<u64, StoreError> {
        self.time("active_accounts", 1, |r| {
            r.active_accounts().map(|n| vec![n])
        })
        .map(|v| v[0])
    }
    fn revision(&mut self) -> Result<i64, StoreError> {
        self.time("revision", 1, |r| r.revision().map(|v| vec![v]))
            .map(|v| v[0])
    }
    fn accounts_by_user_name(&mut self, names: &[String]) -> Result<Vec<Account>, StoreError> {
        self.time("accounts_by_user_name", names.len(), |r| {
            r.accounts_by_user_name(names)
        })
    }
    fn accounts_by_email(&mut self, emails: &[String]) -> Result<Vec<Account>, StoreError> {
        self.time("accounts_by_email", emails.len(), |r| {
            r.accounts_by_email(emails)
        })
    }
    fn accounts_by_name_dob(&mut self, keys: &[NameDob]) -> Result<Vec<Account>, StoreError> {
        self.time("accounts_by_name_dob", keys.len(), |r| {
            r.accounts_by_name_dob(keys)
        })
    }
    fn user_names_like(&mut self, bases: &[String]) -> Result<Vec<String>, StoreError> {
        self.time("user_names_like", bases.len(), |r| r.user_names_like(bases))
    }
    fn groups(&mut self, names: Option<&[String]>) -> Result<Vec<Group>, StoreError> {
        self.time("groups", names.map_or(0, <[_]>::len), |r| r.groups(names))
    }
    fn memberships(&mut self, groups: &[String]) -> Result<Vec<Membership>, StoreError> {
        self.time("memberships", groups.len(), |r| r.memberships(groups))
    }
    fn all_accounts(&mut self) -> Result<Vec<Account>, StoreError> {
        self.time("all_accounts", 0, |r| r.all_accounts())
    }
    fn in_other_groups(
        &mut self,
        user_names: &[String],
        groups: &[String],
    ) -> Result<Vec<String>, StoreError> {
        self.time("in_other_groups", user_names.len(), |r| {
            r.in_other_groups(user_names, groups)
        })
    }
    fn audit(&mut self, since: Option<&str>) -> Result<Vec<AuditEntry>, StoreError> {
        self.time("audit", 0, |r| r.audit(since))
    }
    fn invitations(&mut self) -> Result<Vec<Invitation>, StoreError> {
        self.time("invitations", 0, |r| r.invitations())
    }
}

/// Seconds of each phase, in order.
type Phases = Vec<(&'static str, f64)>;

/// Read and check a roster (floor a; the first phases of a plan).
fn read_and_check(roster: &Path, phases: &mut Phases) -> Res<check::Checked> {
    let cwd = std::env::current_dir()?;
    let start = Instant::now();
    let files = load::discover(&[roster.to_path_buf()], &cwd)
        .map_err(|f| format!("{}: {}", f.file, f.message))?;
    let (inputs, read_errors) = load::read(files);
    phases.push(("read", start.elapsed().as_secs_f64()));
    let start = Instant::now();
    let checked = check::check(inputs);
    phases.push(("check", start.elapsed().as_secs_f64()));
    if let Some(f) = read_errors
        .iter()
        .chain(&checked.findings)
        .find(|f| f.is_error())
    {
        return Err(format!(
            "roster error {}: {}:{}: {}",
            f.code, f.file, f.line, f.message
        )
        .into());
    }
    Ok(checked)
}

/// Plan as `roster plan` does (`make_with_live` in src/cli/plan.rs), timing each phase.
fn make_plan(roster: &Path, url: &str) -> Res<(Plan, Phases, Timed)> {
    let mut phases = Vec::new();
    let checked = read_and_check(roster, &mut phases)?;

    let start = Instant::now();
    let mut data = Vec::new();
    for f in &checked.roster.files {
        data.extend_from_slice(f.name.as_bytes());
        data.push(0);
        data.extend_from_slice(f.text.as_bytes());
        data.push(0);
    }
    let digest = roster::secrets::sha256(&data);
    drop(data);
    let warnings: Vec<Note> = checked.findings.iter().map(Note::from).collect();
    let policy = checked.roster.policy.clone();
    let d = Desired {
        groups: checked.roster.groups.iter().map(|e| &e.item).collect(),
        partners: checked.roster.partners.iter().map(|e| &e.item).collect(),
        policy: &policy,
        digest,
    };
    phases.push(("digest+desired", start.elapsed().as_secs_f64()));

    let start = Instant::now();
    let mut reader = Timed {
        inner: open_store(url)?.reader()?,
        stats: BTreeMap::new(),
    };
    phases.push(("open store", start.elapsed().as_secs_f64()));

    let start = Instant::now();
    let live = compute::gather(&mut reader, &d)?;
    phases.push(("gather", start.elapsed().as_secs_f64()));

    let start = Instant::now();
    let plan = compute::compute(&d, &live, Vec::new(), warnings);
    phases.push(("compute", start.elapsed().as_secs_f64()));
    // The roster, the live state and the plan are freed by the exit, as in
    // `roster plan`: nothing of their teardown is timed.
    drop(d);
    std::mem::forget((live, checked));
    Ok((plan, phases, reader))
}

fn summary(plan: &Plan) -> String {
    let mut outcomes: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &plan.resolutions {
        *outcomes.entry(r.outcome.as_str()).or_default() += 1;
    }
    let s = &plan.summary;
    let outcomes: Vec<String> = outcomes.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let access =
        if s.grant_roles + s.grant_entitlements + s.revoke_entitlements + s.set_case_managers > 0 {
            format!(
                " grant_roles {} grant_entitlements {} revoke_entitlements {} set_case_managers {}",
                s.grant_roles, s.grant_entitlements, s.revoke_entitlements, s.set_case_managers
            )
        } else {
            String::new()
        };
    format!(
        "{}; actions: create_groups {} create_accounts {} add_memberships {} grant {} revoke {} \
         remove_memberships {}{access}; warnings {}",
        outcomes.join(", "),
        s.create_groups,
        s.create_accounts,
        s.add_memberships,
        s.grant_user_manager,
        s.revoke_user_manager,
        s.remove_memberships,
        plan.warnings.len()
    )
}

fn worker_plan(roster: &Path, url: &str) -> Res<()> {
    let (plan, phases, reader) = make_plan(roster, url)?;
    let total: f64 = phases.iter().map(|(_, s)| s).sum();
    for (i, (name, secs)) in phases.iter().enumerate() {
        emit(&format!("phase:{i}:{name}"), *secs, "");
    }
    for (name, s) in &reader.stats {
        let note = format!("{} call(s), {} key(s), {} row(s)", s.calls, s.keys, s.rows);
        emit(&format!("store:{name}"), s.secs, &note);
    }
    emit("total", total, &summary(&plan));
    emit_rss();
    if plan.summary.unresolved > 0 {
        return Err(format!("{} unresolved partner(s)", plan.summary.unresolved).into());
    }
    Ok(())
}

fn worker_parse(roster: &Path) -> Res<()> {
    let mut phases = Vec::new();
    let checked = read_and_check(roster, &mut phases)?;
    emit(
        "total",
        phases.iter().map(|(_, s)| s).sum(),
        &format!("{} partners", checked.roster.partners.len()),
    );
    emit_rss();
    std::mem::forget(checked);
    Ok(())
}

/// The columns `roster` reads of an account, owned.
type Row = (
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    bool,
    String,
);

fn worker_select(db: &Path, partners: usize) -> Res<()> {
    let emails: Vec<String> = (0..partners).map(email).collect();
    let start = Instant::now();
    let conn = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.execute_batch("BEGIN")?;
    let mut stmt = conn.prepare(
        "SELECT user_name, email, first_name, last_name, birth_date, phone, extension, zip, \
         (SELECT min(role) FROM account_roles r WHERE r.account_id = accounts.id), active, \
         credential FROM accounts WHERE email_key = ?1",
    )?;
    let mut out: Vec<Row> = Vec::with_capacity(partners);
    for e in &emails {
        let mut rows = stmt.query([e])?;
        while let Some(r) = rows.next()? {
            out.push((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
                r.get(8)?,
                r.get(9)?,
                r.get(10)?,
            ));
        }
    }
    drop(stmt);
    conn.execute_batch("COMMIT")?;
    let secs = start.elapsed().as_secs_f64();
    emit("total", secs, &format!("{} rows", out.len()));
    emit_rss();
    std::mem::forget(out);
    Ok(())
}

fn worker_apply(roster: &Path, db: &Path) -> Res<()> {
    let url = url_of(db);
    let start = Instant::now();
    let (plan, _, _) = make_plan(roster, &url)?;
    emit("plan (not counted)", start.elapsed().as_secs_f64(), "");
    let opts = apply::Options {
        allow_mass_removal: true,
        onboarding: Onboarding::Invite,
        credentials_file: None,
        actor: "bench",
        now: NOW,
        progress: None,
        replan: None,
        accept_changes: false,
    };
    let start = Instant::now();
    let options = store::Options {
        lock_timeout: LOCK_TIMEOUT,
        ..store::Options::default()
    };
    let applied = apply::apply(&plan, store::open(&url, options)?.as_ref(), &opts)?;
    let secs = start.elapsed().as_secs_f64();
    emit(
        "total",
        secs,
        &format!("{} actions; {}", applied.actions, summary(&plan)),
    );
    emit_rss();
    std::mem::forget(plan);
    Ok(())
}

fn worker_insert(db: &Path, s: Shape) -> Res<()> {
    // Schema as `roster` creates it; rows computed before the clock starts.
    open_store(&url_of(db))?.begin("bench", NOW)?.commit()?;
    let mut names = UserNames::default();
    let mut rng = Rng::new();
    let accounts: Vec<AccountRow> = (0..s.partners)
        .map(|p| AccountRow::new(p, Person::new(p, rng.next()), &mut names))
        .collect();
    // In the order apply writes them: the plan sorts its actions by group,
    // then by account name (case-insensitively), so account ids follow the
    // names and each group's members are written in that order.
    let mut order: Vec<usize> = (0..accounts.len()).collect();
    order.sort_by_cached_key(|&p| accounts[p].user_name.to_lowercase());
    let mut id = vec![0i64; accounts.len()];
    for (i, &p) in order.iter().enumerate() {
        id[p] = i as i64 + 1;
    }
    let mut memberships: Vec<(i64, i64, bool)> = (0..s.groups)
        .flat_map(|g| {
            let id = &id;
            s.members(g).map(move |(p, um)| (g as i64 + 1, id[p], um))
        })
        .collect();
    memberships.sort_unstable();

    let start = Instant::now();
    // The connection as a store session sets it up.
    let mut conn = Connection::open(db)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    {
        let mut stmt = tx.prepare(INSERT_GROUP)?;
        for g in 0..s.groups {
            stmt.execute(params![g as i64 + 1, agency(g), (g % 30) as i64, NOW])?;
        }
        let mut stmt = tx.prepare(INSERT_ACCOUNT)?;
        for &p in &order {
            accounts[p].insert(&mut stmt)?;
        }
        tx.execute(GRANT_ROLES, [])?;
        let mut stmt = tx.prepare(INSERT_MEMBERSHIP)?;
        for (g, a, um) in &memberships {
            stmt.execute(params![g, a, um])?;
        }
    }
    tx.commit()?;
    let secs = start.elapsed().as_secs_f64();
    emit(
        "total",
        secs,
        &format!(
            "{} groups, {} accounts, {} memberships",
            s.groups,
            accounts.len(),
            memberships.len()
        ),
    );
    emit_rss();
    Ok(())
}

fn worker(args: &[String]) -> Res<()> {
    let arg = |i: usize| -> Res<&str> {
        args.get(i)
            .map(String::as_str)
            .ok_or_else(|| "worker: missing argument".into())
    };
    match arg(0)? {
        "plan" => worker_plan(Path::new(arg(1)?), arg(2)?),
        "parse" => worker_parse(Path::new(arg(1)?)),
        "select" => worker_select(Path::new(arg(1)?), arg(2)?.parse()?),
        "apply" => worker_apply(Path::new(arg(1)?), Path::new(arg(2)?)),
        "insert" => worker_insert(Path::new(arg(1)?), BIG),
        // Not measurements: the 1M-account store, and a roster as generated
        // here (to compare with gen-roster), for profiling by hand.
        "seed" => seed(Path::new(arg(1)?)).map(|s| {
            println!(
                "{} accounts, {} groups, {} memberships, {} partners to create",
                s.accounts, s.groups, s.memberships, s.creates
            )
        }),
        "gen" => write_roster(
            Path::new(arg(1)?),
            Shape {
                partners: arg(2)?.parse()?,
                groups: arg(3)?.parse()?,
                memberships: arg(4)?.parse()?,
            },
            args.get(5).is_some_and(|a| a == "access"),
        ),
        other => Err(format!("worker: unknown role {other}").into()),
    }
}

// ---------------------------------------------------------------------------
// The driver.

/// One worker run: name → (seconds, note).
type Sample = BTreeMap<String, (f64, String)>;

fn total(s: &Sample) -> f64 {
    s.get("total").map_or(f64::INFINITY, |v| v.0)
}

fn rss_mib(s: &Sample) -> Option<f64> {
    s.get("rss_kib").map(|v| v.0 / 1024.0)
}

fn run_worker(args: &[&str]) -> Res<Sample> {
    let out = Command::new(std::env::current_exe()?)
        .arg("--worker")
        .args(args)
        .stderr(Stdio::inherit())
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!("worker {args:?} failed ({}):\n{text}", out.status).into());
    }
    let mut sample = Sample::new();
    for line in text.lines() {
        let mut f = line.splitn(3, '\t');
        if let (Some(name), Some(secs)) = (f.next(), f.next()) {
            let note = f.next().unwrap_or_default().to_string();
            sample.insert(name.to_string(), (secs.parse()?, note));
        }
    }
    Ok(sample)
}

/// The best (lowest total) of `runs` runs of the worker `args(run)` gives.
fn best(label: &str, runs: usize, args: impl Fn(usize) -> Vec<String>) -> Res<Sample> {
    let mut best: Option<Sample> = None;
    let mut all = Vec::new();
    for i in 0..runs {
        let args = args(i);
        let s = run_worker(&args.iter().map(String::as_str).collect::<Vec<_>>())?;
        all.push(format!("{:.3}", total(&s)));
        if best.as_ref().is_none_or(|b| total(&s) < total(b)) {
            best = Some(s);
        }
    }
    eprintln!("  {label}: {} s", all.join(" / "));
    best.ok_or_else(|| "BENCH_RUNS must be at least 1".into())
}

/// `roster plan --store URL ROSTER --format json > /dev/null`, the way users
/// run it: wall seconds, peak RSS in MiB (through /usr/bin/time), exit code.
fn run_binary(roster: &Path, url: &str) -> Res<(f64, Option<f64>, i32)> {
    let bin = env!("CARGO_BIN_EXE_roster");
    let time = Path::new("/usr/bin/time");
    let mut cmd = if time.exists() {
        let mut c = Command::new(time);
        c.args(["-f", "rss_kib=%M", bin]);
        c
    } else {
        Command::new(bin)
    };
    cmd.arg("plan")
        .args(["--store", url])
        .arg(roster)
        .args(["--format", "json"])
        .env_remove("ROSTER_SHOW_PII")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let out = cmd.output()?;
    let secs = start.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let rss = stderr
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("rss_kib="))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|kib| kib / 1024.0);
    Ok((secs, rss, out.status.code().unwrap_or(-1)))
}

fn best_binary(label: &str, runs: usize, roster: &Path, url: &str) -> Res<(f64, Option<f64>)> {
    let mut best: Option<(f64, Option<f64>)> = None;
    let mut all = Vec::new();
    for _ in 0..runs {
        let (secs, rss, code) = run_binary(roster, url)?;
        if code != 0 {
            return Err(format!("{label}: roster plan exited with {code}").into());
        }
        all.push(format!("{secs:.3}"));
        if best.is_none_or(|b| secs < b.0) {
            best = Some((secs, rss));
        }
    }
    eprintln!("  {label}: {} s", all.join(" / "));
    best.ok_or_else(|| "BENCH_RUNS must be at least 1".into())
}

fn remove_db(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

fn mib(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |m| format!("{m:.0} MiB"))
}

struct Line {
    case: String,
    measured: f64,
    floor: Option<f64>,
    target: &'static str,
    rss: Option<f64>,
    ok: Option<bool>,
}

fn print_table(lines: &[Line]) {
    println!(
        "{:<52} {:>10} {:>9} {:>6}  {:<22} {:>10}  verdict",
        "case", "measured s", "floor s", "ratio", "target", "peak RSS"
    );
    for l in lines {
        let floor = l.floor.map_or_else(|| "-".into(), |f| format!("{f:.3}"));
        let ratio = l
            .floor
            .map_or_else(|| "-".into(), |f| format!("{:.2}x", l.measured / f));
        let verdict = match l.ok {
            Some(true) => "ok",
            Some(false) => "MISSED",
            None => "",
        };
        println!(
            "{:<52} {:>10.3} {:>9} {:>6}  {:<22} {:>10}  {verdict}",
            l.case,
            l.measured,
            floor,
            ratio,
            l.target,
            mib(l.rss)
        );
    }
}

fn print_phases(title: &str, s: &Sample) {
    println!("\n{title} (best run):");
    // Phases in the order they ran, the store calls under `gather`.
    for (name, (secs, _)) in s {
        let Some(phase) = name.strip_prefix("phase:") else {
            continue;
        };
        let phase = phase.split_once(':').map_or(phase, |(_, n)| n);
        println!("  {phase:<34} {secs:>8.3} s");
        if phase != "gather" {
            continue;
        }
        let mut store_total = 0.0;
        for (name, (secs, note)) in s {
            if let Some(call) = name.strip_prefix("store:") {
                store_total += secs;
                println!("    {call:<32} {secs:>8.3} s  {note}");
            }
        }
        println!(
            "    {:<32} {:>8.3} s  (resolve::resolve, maps, between the calls)",
            "outside store calls",
            secs - store_total
        );
    }
    if let Some((secs, note)) = s.get("total") {
        println!("  {:<34} {secs:>8.3} s  {note}", "total");
    }
}

fn runs() -> usize {
    std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

fn driver() -> Res<()> {
    let started = Instant::now();
    let runs = runs();
    // BENCH_KEEP=1 leaves the rosters and stores behind, to profile a worker
    // (`plan --worker plan ROSTER URL`) or compare two builds on the same files.
    let dir = tempfile::Builder::new()
        .prefix("roster-bench-")
        .disable_cleanup(std::env::var_os("BENCH_KEEP").is_some())
        .tempdir()?;
    let path = |name: &str| dir.path().join(name);
    let p = |p: &PathBuf| p.display().to_string();
    eprintln!(
        "bench plan: {runs} run(s) per figure, in {}",
        dir.path().display()
    );

    let (big, small, db) = (path("big.yaml"), path("small.yaml"), path("store.db"));
    write_roster(&big, BIG, false)?;
    write_roster(&small, SMALL, false)?;
    let t = Instant::now();
    let seeded = seed(&db)?;
    let seed_secs = t.elapsed().as_secs_f64();
    let db_mib = std::fs::metadata(&db)?.len() as f64 / (1 << 20) as f64;
    eprintln!(
        "  seeded {} accounts, {} groups, {} memberships ({} partners left to create) in {seed_secs:.1} s: {db_mib:.0} MiB",
        seeded.accounts, seeded.groups, seeded.memberships, seeded.creates
    );
    let url = url_of(&db);

    let plan_big = best("plan 100k (library)", runs, |_| {
        vec!["plan".into(), p(&big), url.clone()]
    })?;
    let plan_big_bin = best_binary("plan 100k (binary)", runs, &big, &url)?;

    // Case 4: the same roster with roles, entitlements and case managers on
    // every partner (SPEC §9), against a copy of the store that holds them.
    let (big_access, db_access) = (path("big-access.yaml"), path("store-access.db"));
    write_roster(&big_access, BIG, true)?;
    let t = Instant::now();
    let access_rows = seed_access(&db, &db_access)?;
    eprintln!(
        "  access store: {access_rows} more rows in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let url_access = url_of(&db_access);
    let plan_access = best("plan 100k + access (library)", runs, |_| {
        vec!["plan".into(), p(&big_access), url_access.clone()]
    })?;
    let plan_access_bin = best_binary(
        "plan 100k + access (binary)",
        runs,
        &big_access,
        &url_access,
    )?;
    let gib = 1024.0;
    let within_access =
        |m: f64, case1: f64, rss: Option<f64>| m <= 1.2 * case1 && rss.is_none_or(|r| r < gib);
    let access_lines = vec![
        Line {
            case: "4. plan 100k + roles, entitlements, case managers (library)".into(),
            measured: total(&plan_access),
            floor: Some(total(&plan_big)),
            target: "<= 1.2x case 1, < 1 GiB",
            rss: rss_mib(&plan_access),
            ok: Some(within_access(
                total(&plan_access),
                total(&plan_big),
                rss_mib(&plan_access),
            )),
        },
        Line {
            case: "4. plan 100k + roles, entitlements, case managers (e2e)".into(),
            measured: plan_access_bin.0,
            floor: Some(plan_big_bin.0),
            target: "<= 1.2x case 1, < 1 GiB",
            rss: plan_access_bin.1,
            ok: Some(within_access(
                plan_access_bin.0,
                plan_big_bin.0,
                plan_access_bin.1,
            )),
        },
    ];
    if std::env::var("BENCH_ONLY").is_ok_and(|v| v == "access") {
        println!("\n(floor s of case 4: case 1's figure, measured in this run)");
        let case1 = [
            Line {
                case: "1. plan 100k partners / 1M store (library)".into(),
                measured: total(&plan_big),
                floor: None,
                target: "",
                rss: rss_mib(&plan_big),
                ok: None,
            },
            Line {
                case: "1. plan 100k partners / 1M store (roster plan, e2e)".into(),
                measured: plan_big_bin.0,
                floor: None,
                target: "",
                rss: plan_big_bin.1,
                ok: None,
            },
        ];
        print_table(&case1.into_iter().chain(access_lines).collect::<Vec<_>>());
        print_phases("plan 100k phases", &plan_big);
        print_phases("plan 100k + access phases", &plan_access);
        println!("\nwhole run: {:.1} s", started.elapsed().as_secs_f64());
        return Ok(());
    }
    let parse_big = best("(a) parse+check 100k", runs, |_| {
        vec!["parse".into(), p(&big)]
    })?;
    let select_big = best("(b) select 100k", runs, |_| {
        vec!["select".into(), p(&db), BIG.partners.to_string()]
    })?;

    let plan_small = best("plan 1k (library)", runs, |_| {
        vec!["plan".into(), p(&small), url.clone()]
    })?;
    let plan_small_bin = best_binary("plan 1k (binary)", runs, &small, &url)?;
    let parse_small = best("(a) parse+check 1k", runs, |_| {
        vec!["parse".into(), p(&small)]
    })?;
    let select_small = best("(b) select 1k", runs, |_| {
        vec!["select".into(), p(&db), SMALL.partners.to_string()]
    })?;

    let fresh = |name: String| {
        let f = path(&name);
        remove_db(&f);
        p(&f)
    };
    // A fresh, empty store for every run (they go with the temporary directory).
    let apply = best("apply 100k", runs, |i| {
        vec!["apply".into(), p(&big), fresh(format!("apply-{i}.db"))]
    })?;
    let insert = best("(c) insert 100k + 300k", runs, |i| {
        vec!["insert".into(), fresh(format!("insert-{i}.db"))]
    })?;

    let floor_big = total(&parse_big) + total(&select_big);
    let floor_small = total(&parse_small) + total(&select_small);
    let within = |m: f64, f: f64, rss: Option<f64>| m <= 1.3 * f && rss.is_none_or(|r| r < gib);
    let lines = vec![
        Line {
            case: "1. plan 100k partners / 1M store (library)".into(),
            measured: total(&plan_big),
            floor: Some(floor_big),
            target: "<= 1.3x (a+b), < 1 GiB",
            rss: rss_mib(&plan_big),
            ok: Some(within(total(&plan_big), floor_big, rss_mib(&plan_big))),
        },
        Line {
            case: "1. plan 100k partners / 1M store (roster plan, e2e)".into(),
            measured: plan_big_bin.0,
            floor: Some(floor_big),
            target: "<= 1.3x (a+b), < 1 GiB",
            rss: plan_big_bin.1,
            ok: Some(within(plan_big_bin.0, floor_big, plan_big_bin.1)),
        },
        Line {
            case: "2. plan 1k partners / 1M store (library)".into(),
            measured: total(&plan_small),
            floor: Some(floor_small),
            target: "< 0.2 s",
            rss: rss_mib(&plan_small),
            ok: Some(total(&plan_small) < 0.2),
        },
        Line {
            case: "2. plan 1k partners / 1M store (roster plan, e2e)".into(),
            measured: plan_small_bin.0,
            floor: Some(floor_small),
            target: "< 0.2 s",
            rss: plan_small_bin.1,
            ok: Some(plan_small_bin.0 < 0.2),
        },
        Line {
            case: "3. apply 100k accounts + 300k memberships".into(),
            measured: total(&apply),
            floor: Some(total(&insert)),
            target: "<= 1.3x (c)",
            rss: rss_mib(&apply),
            ok: Some(total(&apply) <= 1.3 * total(&insert)),
        },
    ]
    .into_iter()
    .chain(access_lines)
    .collect::<Vec<_>>();
    let floors = [
        ("(a) parse+check, 100k roster", &parse_big),
        ("(b) select by email, 100k partners", &select_big),
        ("(a) parse+check, 1k roster", &parse_small),
        ("(b) select by email, 1k partners", &select_small),
        ("(c) insert 100k accounts + 300k memberships", &insert),
    ];
    let floor_lines: Vec<Line> = floors
        .iter()
        .map(|(case, s)| Line {
            case: (*case).into(),
            measured: total(s),
            floor: None,
            target: "",
            rss: rss_mib(s),
            ok: None,
        })
        .collect();

    println!();
    println!(
        "machine: {} cores; store: {} accounts, {} groups, {} memberships ({db_mib:.0} MiB, seeded in {seed_secs:.1} s); best of {runs}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        seeded.accounts,
        seeded.groups,
        seeded.memberships,
    );
    println!();
    print_table(&lines);
    println!("\nfloors:");
    print_table(&floor_lines);
    print_phases("plan 100k phases", &plan_big);
    print_phases("plan 1k phases", &plan_small);
    print_phases("plan 100k + access phases", &plan_access);
    if let Some((secs, note)) = apply.get("total") {
        println!("\napply: {secs:.3} s for {note}");
    }
    println!("\nwhole run: {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("--worker") => worker(&args[1..]),
        _ => driver(),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
