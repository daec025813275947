//! The resolution ladder (SPEC §4): a pure function of the partners and the
//! accounts the store returned for them.

use crate::domain::{Account, NameDob, names};
use crate::roster::model::Partner;
use crate::roster::normalize::{email_key, name_key};
use std::collections::{HashMap, HashSet};

names! {
    "snake_case";
    pub enum Outcome {
        Matched,
        Reactivate,
        Create,
        NeedsConfirmation,
        Ambiguous,
        Conflict,
    }
}

impl Outcome {
    pub fn is_unresolved(self) -> bool {
        matches!(
            self,
            Outcome::NeedsConfirmation | Outcome::Ambiguous | Outcome::Conflict
        )
    }
}

names! {
    "snake_case";
    pub enum Via {
        Pinned,
        Email,
        NameDob,
        InactiveEmail,
        InactiveNameDob,
    }
}

names! {
    "snake_case";
    /// Fields that decide a match and can differ between a partner and an account.
    pub enum Differs {
        FirstName,
        LastName,
        BirthDate,
        Email,
    }
}

/// Accounts the store returned for a roster, indexed the ways the ladder looks.
pub struct Live<'a> {
    pub accounts: &'a [Account],
    by_user: HashMap<String, usize>,
    by_email: HashMap<String, Vec<usize>>,
    /// Built on first use: most rosters settle everyone by `account:` or email.
    by_name_dob: std::cell::OnceCell<HashMap<NameDob, Vec<usize>>>,
}

impl<'a> Live<'a> {
    /// `accounts` must not repeat a user name.
    pub fn new(accounts: &'a [Account]) -> Self {
        let mut by_user = HashMap::with_capacity(accounts.len());
        let mut by_email: HashMap<String, Vec<usize>> = HashMap::with_capacity(accounts.len());
        for (i, a) in accounts.iter().enumerate() {
            by_user.insert(a.user_name.to_lowercase(), i);
            by_email
                .entry(email_key(&a.profile.email).into_owned())
                .or_default()
                .push(i);
        }
        Live {
            accounts,
            by_user,
            by_email,
            by_name_dob: std::cell::OnceCell::new(),
        }
    }

    pub fn by_user(&self, name: &str) -> Option<usize> {
        self.by_user.get(&name.to_lowercase()).copied()
    }

    fn email(&self, key: &str) -> &[usize] {
        self.by_email.get(key).map_or(&[], Vec::as_slice)
    }

    fn name_dob(&self, p: &Partner) -> &[usize] {
        let Some(dob) = &p.birth_date else {
            return &[];
        };
        let index = self.by_name_dob.get_or_init(|| {
            let mut m: HashMap<NameDob, Vec<usize>> = HashMap::new();
            for (i, a) in self.accounts.iter().enumerate() {
                if let Some(dob) = &a.profile.birth_date {
                    m.entry(NameDob::new(
                        &a.profile.first_name,
                        &a.profile.last_name,
                        dob,
                    ))
                    .or_default()
                    .push(i);
                }
            }
            m
        });
        index
            .get(&NameDob::new(&p.first_name, &p.last_name, dob))
            .map_or(&[], Vec::as_slice)
    }
}

/// Where one partner landed. Account indexes point into [`Live::accounts`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub outcome: Outcome,
    pub via: Option<Via>,
    /// The account matched or reactivated.
    pub account: Option<usize>,
    /// For `create`: the user name, once assigned.
    pub new_user_name: Option<String>,
    pub candidates: Vec<usize>,
    pub differs: Vec<Differs>,
    pub reason: Option<String>,
    /// The account matched is `previously`: it is to be renamed to this
    /// (the partner's `account`).
    pub rename: Option<String>,
}

impl Resolved {
    fn new(outcome: Outcome, via: Option<Via>) -> Self {
        Resolved {
            outcome,
            via,
            account: None,
            new_user_name: None,
            candidates: Vec::new(),
            differs: Vec::new(),
            reason: None,
            rename: None,
        }
    }
}

/// Which of first name, last name and birth date differ. A birth date on
/// one side only differs: it cannot confirm the person. None on both sides
/// (systems that know people by name and email alone) does not: there is
/// nothing to compare, and an account this roster created must match it.
pub fn differs(p: &Partner, a: &Account) -> Vec<Differs> {
    let mut d = Vec::new();
    if !same_name(&p.first_name, &a.profile.first_name) {
        d.push(Differs::FirstName);
    }
    if !same_name(&p.last_name, &a.profile.last_name) {
        d.push(Differs::LastName);
    }
    match (&p.birth_date, &a.profile.birth_date) {
        (Some(x), Some(y)) if x.trim() == y.trim() => {}
        (None, None) => {}
        _ => d.push(Differs::BirthDate),
    }
    d
}

/// Names compare equal after trimming, collapsing spaces, NFC and case
/// folding; ASCII names without allocating.
fn same_name(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        let mut x = a.split_ascii_whitespace();
        let mut y = b.split_ascii_whitespace();
        loop {
            match (x.next(), y.next()) {
                (None, None) => return true,
                (Some(u), Some(v)) if u.eq_ignore_ascii_case(v) => {}
                _ => return false,
            }
        }
    }
    name_key(a) == name_key(b)
}

/// Steps 1–3 for one partner: what the store holds for them, ignoring `account:`.
fn ladder(p: &Partner, live: &Live) -> Resolved {
    let email = email_key(&p.email);
    let by_email = live.email(&email);
    let (active_email, inactive_email): (Vec<usize>, Vec<usize>) =
        by_email.iter().partition(|&&i| live.accounts[i].active);
    // Name + birth date only matters when no active account has the email.
    let by_name = if active_email.is_empty() {
        live.name_dob(p)
    } else {
        &[]
    };
    let (active_name, inactive_name): (Vec<usize>, Vec<usize>) =
        by_name.iter().partition(|&&i| live.accounts[i].active);

    let pick = |hits: Vec<usize>, via: Via, full_match: Outcome| -> Resolved {
        if hits.len() > 1 {
            let mut r = Resolved::new(Outcome::Ambiguous, Some(via));
            r.candidates = hits;
            return r;
        }
        let i = hits[0];
        let by_email = matches!(via, Via::Email | Via::InactiveEmail);
        let d = if by_email {
            differs(p, &live.accounts[i])
        } else {
            vec![Differs::Email]
        };
        let mut r = if d.is_empty() {
            let mut r = Resolved::new(full_match, Some(via));
            r.account = Some(i);
            r
        } else {
            let mut r = Resolved::new(Outcome::NeedsConfirmation, Some(via));
            r.candidates = vec![i];
            r
        };
        r.differs = d;
        r
    };
    // A partner declared inactive whose email is exactly one inactive
    // account's, with the same name and birth date, is that account: once
    // deactivated it must not drift to an active look-alike by name + birth
    // date, or applying the roster again would change the outcome.
    let settled_inactive = !p.active
        && active_email.is_empty()
        && inactive_email.len() == 1
        && differs(p, &live.accounts[inactive_email[0]]).is_empty();
    if !active_email.is_empty() {
        pick(active_email, Via::Email, Outcome::Matched)
    } else if settled_inactive {
        pick(inactive_email, Via::InactiveEmail, Outcome::Matched)
    } else if !active_name.is_empty() {
        pick(active_name, Via::NameDob, Outcome::Matched)
    } else if !inactive_email.is_empty() {
        let full = if p.active {
            Outcome::Reactivate
        } else {
            Outcome::Matched
        };
        pick(inactive_email, Via::InactiveEmail, full)
    } else if !inactive_name.is_empty() {
        pick(inactive_name, Via::InactiveNameDob, Outcome::Matched)
    } else {
        Resolved::new(Outcome::Create, None)
    }
}

/// Resolve every partner (in roster order). User names of new accounts are
/// assigned afterwards by [`assign_user_names`], once the store has said
/// which names are taken.
pub fn resolve(partners: &[&Partner], live: &Live) -> Vec<Resolved> {
    let mut out: Vec<Resolved> = partners
        .iter()
        .map(|p| {
            if let Some(pinned) = p.account.as_deref().map(str::trim) {
                // SPEC §9 renames: `previously` is the name the account had.
                let old = p
                    .previously
                    .as_deref()
                    .map(str::trim)
                    .filter(|o| !o.is_empty() && !o.eq_ignore_ascii_case(pinned));
                let before = old.and_then(|o| live.by_user(o));
                if let (Some(i), Some(j), Some(old)) = (live.by_user(pinned), before, old)
                    && i != j
                {
                    let mut r = Resolved::new(Outcome::Conflict, Some(Via::Pinned));
                    r.candidates = vec![i, j];
                    r.reason = Some(format!(
                        "`{old}` cannot be renamed to `{pinned}`: an account `{pinned}` already exists; pick another name, or remove `previously` if the rename is done"
                    ));
                    return r;
                }
                let target = live.by_user(pinned).map(|i| (i, None)).or_else(|| {
                    before.map(|j| (j, Some(pinned.to_string())))
                });
                if let Some((i, rename)) = target {
                    let outcome = if live.accounts[i].active || !p.active {
                        Outcome::Matched
                    } else {
                        Outcome::Reactivate
                    };
                    let mut r = Resolved::new(outcome, Some(Via::Pinned));
                    r.account = Some(i);
                    r.rename = rename;
                    return r;
                }
                let found = ladder(p, live);
                if found.outcome == Outcome::Create {
                    let mut r = found;
                    r.new_user_name = Some(pinned.to_string());
                    return r;
                }
                // A typo in `account:` must never create a second account for a person.
                let mut r = Resolved::new(Outcome::Conflict, found.via);
                r.candidates = found.account.into_iter().chain(found.candidates).collect();
                r.differs = found.differs;
                r.reason = Some(format!(
                    "account `{pinned}` does not exist, but the store holds an account that may be this person"
                ));
                return r;
            }
            ladder(p, live)
        })
        .collect();

    // Two partners on one account: neither may proceed.
    let mut users: HashMap<usize, Vec<usize>> = HashMap::new();
    let mut pinned_new: HashMap<String, Vec<usize>> = HashMap::new();
    for (k, r) in out.iter().enumerate() {
        if let Some(i) = r.account {
            users.entry(i).or_default().push(k);
        }
        if let Some(n) = &r.new_user_name {
            pinned_new.entry(n.to_lowercase()).or_default().push(k);
        }
    }
    for (account, ks) in users.into_iter().filter(|(_, ks)| ks.len() > 1) {
        let others: Vec<String> = ks
            .iter()
            .map(|&k| partners[k].email.to_lowercase())
            .collect();
        for &k in &ks {
            let r = &mut out[k];
            r.outcome = Outcome::Conflict;
            r.account = None;
            r.candidates = vec![account];
            r.reason = Some(format!(
                "partners {} all resolve to account `{}`",
                others.join(", "),
                live.accounts[account].user_name
            ));
        }
    }
    for (name, ks) in pinned_new.into_iter().filter(|(_, ks)| ks.len() > 1) {
        let others: Vec<String> = ks
            .iter()
            .map(|&k| partners[k].email.to_lowercase())
            .collect();
        for &k in &ks {
            let r = &mut out[k];
            r.outcome = Outcome::Conflict;
            r.reason = Some(format!(
                "partners {} all name the new account `{name}`",
                others.join(", ")
            ));
            r.new_user_name = None;
        }
    }
    out
}

/// First initial + last name in ASCII letters and digits (SPEC §4):
/// José Núñez-O'Neil → `JNunezONeil`.
pub fn user_name_base(first: &str, last: &str) -> String {
    let fold = |s: &str| -> String {
        deunicode::deunicode(s)
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect()
    };
    let first = fold(first);
    let mut base: String = first
        .chars()
        .next()
        .map(|c| c.to_ascii_uppercase())
        .into_iter()
        .collect();
    base.push_str(&fold(last));
    if base.is_empty() {
        base.push_str("User");
    }
    base
}

/// Names taken under one base: whether the base itself is, and which
/// numeric suffixes (`JJones2` → 2) are.
#[derive(Default)]
struct Taken {
    base: bool,
    suffixes: HashSet<u64>,
    /// No suffix below this is free.
    next: u64,
}

/// Give every `create` without a name one: its base, then base2, base3, …
/// until unique (case-insensitively) among `taken` (the store's lower-cased
/// names that start with one of the bases) and the names this plan already
/// uses.
pub fn assign_user_names(partners: &[&Partner], resolved: &mut [Resolved], taken: &[String]) {
    let bases: Vec<Option<String>> = partners
        .iter()
        .zip(resolved.iter())
        .map(|(p, r)| {
            (r.outcome == Outcome::Create && r.new_user_name.is_none())
                .then(|| user_name_base(&p.first_name, &p.last_name))
        })
        .collect();
    let mut by_base: HashMap<String, Taken> = bases
        .iter()
        .flatten()
        .map(|b| (b.to_lowercase(), Taken::default()))
        .collect();
    for name in taken {
        note(&mut by_base, name);
    }
    for r in resolved.iter() {
        if let Some(n) = &r.new_user_name {
            note(&mut by_base, n);
        }
    }
    for (base, r) in bases.into_iter().zip(resolved.iter_mut()) {
        let Some(base) = base else { continue };
        let Some(t) = by_base.get_mut(&base.to_lowercase()) else {
            continue;
        };
        let name = if !t.base {
            base
        } else {
            let mut n = t.next.max(2);
            while t.suffixes.contains(&n) {
                n += 1;
            }
            t.next = n + 1;
            format!("{base}{n}")
        };
        // Registered under every base it could be read as (`AB12` is AB + 12 and AB1 + 2).
        note(&mut by_base, &name);
        r.new_user_name = Some(name);
    }
}

/// Record a taken name under each base it splits into: base + digits, where
/// the base may itself end in digits.
fn note(by_base: &mut HashMap<String, Taken>, name: &str) {
    let name = name.to_lowercase();
    let digits = name.bytes().rev().take_while(u8::is_ascii_digit).count();
    for cut in (name.len() - digits)..=name.len() {
        if let Some(t) = by_base.get_mut(&name[..cut]) {
            let suffix = &name[cut..];
            if suffix.is_empty() {
                t.base = true;
            } else if !suffix.starts_with('0')
                && let Ok(n) = suffix.parse::<u64>()
            {
                t.suffixes.insert(n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{CredentialState, Profile};

    fn account(
        user: &str,
        email: &str,
        first: &str,
        last: &str,
        dob: Option<&str>,
        active: bool,
    ) -> Account {
        let profile = Profile {
            email: email.into(),
            first_name: first.into(),
            last_name: last.into(),
            birth_date: dob.map(Into::into),
            phone: None,
            extension: None,
            zip: None,
        };
        let mut a = Account::new(user, profile, CredentialState::Invited);
        a.active = active;
        a
    }

    fn partner(email: &str, first: &str, last: &str, dob: &str, pinned: Option<&str>) -> Partner {
        Partner {
            email: email.into(),
            first_name: first.into(),
            last_name: last.into(),
            birth_date: Some(dob.into()),
            phone: None,
            extension: None,
            zip: None,
            account: pinned.map(Into::into),
            ..Partner::default()
        }
    }

    fn inactive(mut p: Partner) -> Partner {
        p.active = false;
        p
    }

    /// The store every ladder case runs against.
    fn store() -> Vec<Account> {
        vec![
            account(
                "MMcCray",
                "mandy@example.com",
                "Mandy",
                "McCray",
                Some("1972-09-01"),
                true,
            ),
            account(
                "AWrigley",
                "ashley@example.com",
                "Ashley",
                "Smith",
                Some("1985-04-17"),
                true,
            ),
            account("NoDob", "nodob@example.com", "Nora", "Dobbs", None, true),
            account(
                "Dup1",
                "dup@example.com",
                "Dee",
                "Upton",
                Some("1990-01-01"),
                true,
            ),
            account(
                "Dup2",
                "DUP@example.com",
                "Dee",
                "Upton",
                Some("1990-01-01"),
                true,
            ),
            account(
                "MLee",
                "marcus@old.example.com",
                "Marcus",
                "Lee",
                Some("1975-12-02"),
                true,
            ),
            account(
                "SPatel",
                "sam@a.example.com",
                "Sam",
                "Patel",
                Some("1993-01-21"),
                true,
            ),
            account(
                "SPatel2",
                "sam@b.example.com",
                "SAM",
                "patel",
                Some("1993-01-21"),
                true,
            ),
            account(
                "PRaman",
                "priya@example.net",
                "Priya",
                "Raman",
                Some("1968-06-05"),
                false,
            ),
            account(
                "OldKim",
                "kim@example.net",
                "Kim",
                "Old",
                Some("1960-01-01"),
                false,
            ),
            account(
                "RDelgado",
                "rosa@old.example.com",
                "Rosa",
                "Delgado",
                Some("1981-07-14"),
                false,
            ),
            account(
                "IDup1",
                "idup@example.net",
                "Ivy",
                "Dupont",
                Some("1970-01-01"),
                false,
            ),
            account(
                "IDup2",
                "idup@example.net",
                "Ivy",
                "Dupont",
                Some("1970-01-01"),
                false,
            ),
            account(
                "OTwin1",
                "ot1@old.example.com",
                "Otto",
                "Twin",
                Some("1955-05-05"),
                false,
            ),
            account(
                "OTwin2",
                "ot2@old.example.com",
                "Otto",
                "Twin",
                Some("1955-05-05"),
                false,
            ),
            account(
                "JNunez",
                "jn@x.example.com",
                "José",
                "Núñez",
                Some("1979-02-28"),
                true,
            ),
        ]
    }

    #[test]
    fn every_rung_of_the_ladder() {
        use Outcome::*;
        type Case = (
            Partner,
            Outcome,
            Option<Via>,
            &'static [&'static str],
            &'static [Differs],
        );
        let cases: Vec<Case> = vec![
            (
                partner("x@example.com", "X", "Y", "2000-01-01", Some("mmccray")),
                Matched,
                Some(Via::Pinned),
                &["MMcCray"],
                &[],
            ),
            (
                partner(
                    "priya@example.net",
                    "Priya",
                    "Raman",
                    "1968-06-05",
                    Some("PRaman"),
                ),
                Reactivate,
                Some(Via::Pinned),
                &["PRaman"],
                &[],
            ),
            (
                partner("Mandy@Example.com", " mandy ", "MCCRAY", "1972-09-01", None),
                Matched,
                Some(Via::Email),
                &["MMcCray"],
                &[],
            ),
            (
                partner(
                    "ashley@example.com",
                    "Ashley",
                    "Wrigley",
                    "1985-04-18",
                    None,
                ),
                NeedsConfirmation,
                Some(Via::Email),
                &["AWrigley"],
                &[Differs::LastName, Differs::BirthDate],
            ),
            (
                partner("nodob@example.com", "Nora", "Dobbs", "1950-01-01", None),
                NeedsConfirmation,
                Some(Via::Email),
                &["NoDob"],
                &[Differs::BirthDate],
            ),
            (
                Partner {
                    birth_date: None,
                    ..partner("nodob@example.com", "Nora", "Dobbs", "", None)
                },
                Matched,
                Some(Via::Email),
                &["NoDob"],
                &[],
            ),
            (
                Partner {
                    birth_date: None,
                    ..partner("mandy@example.com", "Mandy", "McCray", "", None)
                },
                NeedsConfirmation,
                Some(Via::Email),
                &["MMcCray"],
                &[Differs::BirthDate],
            ),
            (
                partner("dup@example.com", "Dee", "Upton", "1990-01-01", None),
                Ambiguous,
                Some(Via::Email),
                &["Dup1", "Dup2"],
                &[],
            ),
            (
                partner(
                    "marcus@new.example.com",
                    "Marcus",
                    "Lee",
                    "1975-12-02",
                    None,
                ),
                NeedsConfirmation,
                Some(Via::NameDob),
                &["MLee"],
                &[Differs::Email],
            ),
            (
                partner("sam@c.example.com", "Sam", "Patel", "1993-01-21", None),
                Ambiguous,
                Some(Via::NameDob),
                &["SPatel", "SPatel2"],
                &[],
            ),
            (
                partner("PRIYA@example.net", "Priya", "Raman", "1968-06-05", None),
                Reactivate,
                Some(Via::InactiveEmail),
                &["PRaman"],
                &[],
            ),
            (
                partner("kim@example.net", "Kim", "New", "1960-01-01", None),
                NeedsConfirmation,
                Some(Via::InactiveEmail),
                &["OldKim"],
                &[Differs::LastName],
            ),
            (
                partner("idup@example.net", "Ivy", "Dupont", "1970-01-01", None),
                Ambiguous,
                Some(Via::InactiveEmail),
                &["IDup1", "IDup2"],
                &[],
            ),
            (
                partner("otto@example.com", "Otto", "Twin", "1955-05-05", None),
                Ambiguous,
                Some(Via::InactiveNameDob),
                &["OTwin1", "OTwin2"],
                &[],
            ),
            (
                inactive(partner(
                    "priya@example.net",
                    "Priya",
                    "Raman",
                    "1968-06-05",
                    None,
                )),
                Matched,
                Some(Via::InactiveEmail),
                &["PRaman"],
                &[],
            ),
            (
                inactive(partner(
                    "mandy@example.com",
                    "Mandy",
                    "McCray",
                    "1972-09-01",
                    None,
                )),
                Matched,
                Some(Via::Email),
                &["MMcCray"],
                &[],
            ),
            (
                partner(
                    "rosa@new.example.com",
                    "Rosa",
                    "Delgado",
                    "1981-07-14",
                    None,
                ),
                NeedsConfirmation,
                Some(Via::InactiveNameDob),
                &["RDelgado"],
                &[Differs::Email],
            ),
            (
                partner(
                    "jose@example.org",
                    "José",
                    "Núñez-O'Neil",
                    "1979-02-28",
                    None,
                ),
                Create,
                None,
                &["JNunezONeil"],
                &[],
            ),
            (
                partner(
                    "new@example.org",
                    "New",
                    "Person",
                    "2001-01-01",
                    Some("NPerson7"),
                ),
                Create,
                None,
                &["NPerson7"],
                &[],
            ),
            (
                partner(
                    "ashley@example.com",
                    "Ashley",
                    "Smith",
                    "1985-04-17",
                    Some("AWrigly"),
                ),
                Conflict,
                Some(Via::Email),
                &["AWrigley"],
                &[],
            ),
        ];
        let accounts = store();
        let live = Live::new(&accounts);
        for (p, outcome, via, names, differs) in cases {
            let mut r = resolve(&[&p], &live);
            assign_user_names(&[&p], &mut r, &[]);
            let r = &r[0];
            assert_eq!((r.outcome, r.via), (outcome, via), "{}", p.email);
            let got: Vec<&str> = match outcome {
                Create => r.new_user_name.iter().map(String::as_str).collect(),
                Matched | Reactivate => r
                    .account
                    .iter()
                    .map(|&i| accounts[i].user_name.as_str())
                    .collect(),
                _ => r
                    .candidates
                    .iter()
                    .map(|&i| accounts[i].user_name.as_str())
                    .collect(),
            };
            assert_eq!(got, names, "{}", p.email);
            assert_eq!(r.differs, differs, "{}", p.email);
        }
    }

    /// A partner declared `active: false` who shares name and birth date
    /// with an active partner: after the first apply deactivated the account,
    /// the exact email match still settles it (the look-alike stays theirs).
    #[test]
    fn inactive_partner_keeps_its_email_match_over_a_look_alike() {
        let accounts = vec![
            account(
                "CTwin",
                "chris@a.example.com",
                "Chris",
                "Twin",
                Some("1980-02-02"),
                true,
            ),
            account(
                "CTwin2",
                "chris@b.example.com",
                "Chris",
                "Twin",
                Some("1980-02-02"),
                false,
            ),
        ];
        let live = Live::new(&accounts);
        let gone = inactive(partner(
            "chris@b.example.com",
            "Chris",
            "Twin",
            "1980-02-02",
            None,
        ));
        let stays = partner("chris@a.example.com", "Chris", "Twin", "1980-02-02", None);
        let r = resolve(&[&gone, &stays], &live);
        assert_eq!(
            (r[0].outcome, r[0].via, r[0].account),
            (Outcome::Matched, Some(Via::InactiveEmail), Some(1)),
            "{r:?}"
        );
        assert_eq!(
            (r[1].outcome, r[1].via, r[1].account),
            (Outcome::Matched, Some(Via::Email), Some(0))
        );
        // An active partner with that email is still a reactivation.
        let back = partner("chris@b.example.com", "Chris", "Twin", "1980-02-02", None);
        let r = resolve(&[&back], &live);
        assert_eq!(r[0].outcome, Outcome::NeedsConfirmation, "{r:?}");
    }

    #[test]
    fn two_partners_on_one_account_conflict() {
        let accounts = store();
        let live = Live::new(&accounts);
        let a = partner("mandy@example.com", "Mandy", "McCray", "1972-09-01", None);
        let b = partner("m2@example.com", "M", "M", "2000-01-01", Some("MMcCray"));
        let c = partner("n1@example.com", "N", "One", "2000-01-01", Some("Same"));
        let d = partner("n2@example.com", "N", "Two", "2000-01-01", Some("same"));
        let r = resolve(&[&a, &b, &c, &d], &live);
        assert!(r.iter().all(|r| r.outcome == Outcome::Conflict), "{r:?}");
        assert!(
            r[0].reason
                .as_deref()
                .unwrap()
                .contains("all resolve to account `MMcCray`")
        );
        assert!(
            r[2].reason
                .as_deref()
                .unwrap()
                .contains("all name the new account `same`")
        );
    }

    #[test]
    fn user_names_count_up_past_the_store_and_the_plan() {
        let accounts = store();
        let live = Live::new(&accounts);
        let ps: Vec<Partner> = ["j1", "j2", "j3"]
            .iter()
            .map(|e| {
                partner(
                    &format!("{e}@example.org"),
                    "Jordan",
                    "Jones",
                    "1990-01-01",
                    None,
                )
            })
            .collect();
        let refs: Vec<&Partner> = ps.iter().collect();
        let mut r = resolve(&refs, &live);
        let taken: Vec<String> = ["JJones", "jjones3", "jjones03", "jjonesx"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assign_user_names(&refs, &mut r, &taken);
        let names: Vec<_> = r.iter().map(|r| r.new_user_name.clone().unwrap()).collect();
        assert_eq!(names, ["JJones2", "JJones4", "JJones5"]);
    }

    #[test]
    fn user_name_rule() {
        let cases = [
            ("José", "Núñez-O'Neil", "JNunezONeil"),
            ("Mandy", "McCray", "MMcCray"),
            ("ashley", "wrigley", "Awrigley"),
            ("Zoë", "Ødegård", "ZOdegard"),
            ("  ", "", "User"),
            ("Ана", "Иванова", "AIvanova"),
        ];
        for (first, last, want) in cases {
            assert_eq!(user_name_base(first, last), want, "{first} {last}");
        }
    }
}
