//! The resolution ladder (SPEC §4): a pure function of the partners and the
//! accounts the store returned for them.

use crate::plan::{Differs, Outcome, Via};
use crate::roster::model::Partner;
use crate::roster::normalize::{email_key, name_key};
use crate::store::{Account, NameDob};
use std::collections::{HashMap, HashSet};

/// Accounts the store returned for a roster, indexed the ways the ladder looks.
pub struct Live<'a> {
    pub accounts: &'a [Account],
    by_user: HashMap<String, usize>,
    by_email: HashMap<String, Vec<usize>>,
    by_name_dob: HashMap<NameDob, Vec<usize>>,
}

impl<'a> Live<'a> {
    /// `accounts` must not repeat a user name.
    pub fn new(accounts: &'a [Account]) -> Self {
        let mut by_user = HashMap::with_capacity(accounts.len());
        let mut by_email: HashMap<String, Vec<usize>> = HashMap::with_capacity(accounts.len());
        let mut by_name_dob: HashMap<NameDob, Vec<usize>> = HashMap::new();
        for (i, a) in accounts.iter().enumerate() {
            by_user.insert(a.user_name.to_lowercase(), i);
            by_email
                .entry(email_key(&a.profile.email).into_owned())
                .or_default()
                .push(i);
            if let Some(dob) = &a.profile.birth_date {
                by_name_dob
                    .entry(NameDob::new(
                        &a.profile.first_name,
                        &a.profile.last_name,
                        dob,
                    ))
                    .or_default()
                    .push(i);
            }
        }
        Live {
            accounts,
            by_user,
            by_email,
            by_name_dob,
        }
    }

    pub fn by_user(&self, name: &str) -> Option<usize> {
        self.by_user.get(&name.to_lowercase()).copied()
    }

    fn email(&self, key: &str) -> &[usize] {
        self.by_email.get(key).map_or(&[], Vec::as_slice)
    }

    fn name_dob(&self, p: &Partner) -> &[usize] {
        match &p.birth_date {
            Some(dob) => self
                .by_name_dob
                .get(&NameDob::new(&p.first_name, &p.last_name, dob))
                .map_or(&[], Vec::as_slice),
            None => &[],
        }
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
        }
    }
}

/// Which of first name, last name and birth date differ (a missing birth
/// date on either side differs: it cannot confirm the person).
pub fn differs(p: &Partner, a: &Account) -> Vec<Differs> {
    let mut d = Vec::new();
    if name_key(&p.first_name) != name_key(&a.profile.first_name) {
        d.push(Differs::FirstName);
    }
    if name_key(&p.last_name) != name_key(&a.profile.last_name) {
        d.push(Differs::LastName);
    }
    match (&p.birth_date, &a.profile.birth_date) {
        (Some(x), Some(y)) if x.trim() == y.trim() => {}
        _ => d.push(Differs::BirthDate),
    }
    d
}

/// Steps 1–3 for one partner: what the store holds for them, ignoring `account:`.
fn ladder(p: &Partner, live: &Live) -> Resolved {
    let email = email_key(&p.email);
    let by_email = live.email(&email);
    let by_name = live.name_dob(p);
    let (active_email, inactive_email): (Vec<usize>, Vec<usize>) =
        by_email.iter().partition(|&&i| live.accounts[i].active);
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
    if !active_email.is_empty() {
        pick(active_email, Via::Email, Outcome::Matched)
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
                if let Some(i) = live.by_user(pinned) {
                    let outcome = if live.accounts[i].active || !p.active {
                        Outcome::Matched
                    } else {
                        Outcome::Reactivate
                    };
                    let mut r = Resolved::new(outcome, Some(Via::Pinned));
                    r.account = Some(i);
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

/// Give every `create` without a name one: its base, then base2, base3, …
/// until unique (case-insensitively) among `taken` (the store's names) and
/// the names this plan already uses.
pub fn assign_user_names(
    partners: &[&Partner],
    resolved: &mut [Resolved],
    taken: &HashSet<String>,
) {
    let mut used: HashSet<String> = resolved
        .iter()
        .filter_map(|r| r.new_user_name.as_ref().map(|n| n.to_lowercase()))
        .collect();
    for (p, r) in partners.iter().zip(resolved.iter_mut()) {
        if r.outcome != Outcome::Create || r.new_user_name.is_some() {
            continue;
        }
        let base = user_name_base(&p.first_name, &p.last_name);
        let mut name = base.clone();
        let mut n = 1u64;
        while taken.contains(&name.to_lowercase()) || used.contains(&name.to_lowercase()) {
            n += 1;
            name = format!("{base}{n}");
        }
        used.insert(name.to_lowercase());
        r.new_user_name = Some(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
