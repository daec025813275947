//! Fuzzing on the stable toolchain: seeded mutations of a seed corpus
//! (byte flips, inserted tokens, splices, truncation, non-ASCII, huge
//! repetitions) pushed through every parser that takes outside input, each
//! input under `catch_unwind`. A panic is reported and its input saved under
//! `target/fuzz-crashes/`; the run fails if there was any.
//!
//! `cargo bench --bench fuzz` runs 1,000,000 inputs per target;
//! `ROSTER_FUZZ_ITERS=N` sets another count, `ROSTER_FUZZ_SEED=N` another
//! seed, `ROSTER_FUZZ_TARGETS=yaml,filter` a subset. The CLI tests run a
//! short smoke of every target (`fuzz::smoke`).

#![allow(dead_code)]

use roster::check;
use roster::report::{self, Style};
use roster::roster::load::Input;
use roster::scim::filter;
use roster::scim::patch;
use serde_json::Value;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

/// xorshift64*: small, fast and the same on every machine for a seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }
}

/// Characters that break code assuming one byte per character, or that
/// terminals and databases treat specially.
const NON_ASCII: &[&str] = &[
    "é",
    "ẞ",
    "ß",
    "İ",
    "ﬃ",
    "𝔘",
    "📞",
    "\u{202e}",
    "\u{200b}",
    "\u{feff}",
    "\u{0}",
    "\u{1b}",
    "\r",
    "\u{85}",
    "\u{2028}",
    "\u{ffff}",
    "١",
    "１",
    "Å",
    "ǅ",
    "\u{301}",
    "\u{10ffff}",
];

/// One parser under test.
pub struct Target {
    pub name: &'static str,
    pub seeds: Vec<Vec<u8>>,
    /// Tokens of the input's grammar, inserted by mutations.
    pub tokens: &'static [&'static str],
    pub run: fn(&[u8]),
}

/// The largest input made: repetitions stop here.
const MAX_INPUT: usize = 256 * 1024;

/// A new input: a seed with one to eight mutations.
pub fn mutate(rng: &mut Rng, t: &Target, out: &mut Vec<u8>) {
    out.clear();
    if t.seeds.is_empty() || rng.below(20) == 0 {
        // Now and then, tokens alone.
        for _ in 0..rng.below(12) {
            out.extend_from_slice(t.tokens[rng.below(t.tokens.len())].as_bytes());
        }
        return;
    }
    out.extend_from_slice(&t.seeds[rng.below(t.seeds.len())]);
    for _ in 0..=rng.below(8) {
        let len = out.len();
        let at = rng.below(len + 1);
        match rng.below(10) {
            0 if len > 0 => {
                let i = rng.below(len);
                out[i] ^= 1 << rng.below(8);
            }
            1 => out.insert(at, rng.next_u64() as u8),
            2 | 3 => {
                let tok = t.tokens[rng.below(t.tokens.len())];
                out.splice(at..at, tok.bytes());
            }
            4 if len > 0 => {
                let end = (at + rng.below(32)).min(len);
                out.drain(at..end);
            }
            5 => {
                let other = &t.seeds[rng.below(t.seeds.len())];
                let from = rng.below(other.len() + 1);
                let to = (from + rng.below(256)).min(other.len());
                out.splice(at..at, other[from..to].iter().copied());
            }
            6 => out.truncate(at),
            7 => {
                let s = NON_ASCII[rng.below(NON_ASCII.len())];
                out.splice(at..at, s.bytes());
            }
            8 if len > 0 => {
                // A huge repetition of a short piece.
                let from = rng.below(len);
                let to = (from + 1 + rng.below(16)).min(len);
                let piece = out[from..to].to_vec();
                let times = 1 + rng.below(MAX_INPUT / piece.len().max(1) / 8);
                let rep: Vec<u8> = piece.repeat(times);
                out.splice(at..at, rep);
            }
            _ if len > 0 => {
                // Cut inside a multi-byte character on purpose.
                let i = rng.below(len);
                out[i] = 0x80 | (rng.next_u64() as u8 & 0x3f);
            }
            _ => {}
        }
        out.truncate(MAX_INPUT);
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

// ---- targets ---------------------------------------------------------------

/// Load and check one roster file, then render its findings every way.
fn yaml(b: &[u8]) {
    let input = Input {
        name: "r.yaml".into(),
        rel: "r.yaml".into(),
        bytes: b.to_vec(),
    };
    let checked = check::check(vec![input]);
    let files = &checked.roster.files;
    for show_pii in [false, true] {
        let style = Style {
            color: show_pii,
            show_pii,
        };
        std::hint::black_box(report::human(&checked.findings, files, style));
    }
    std::hint::black_box(report::json(&checked.findings));
    std::hint::black_box(report::github(&checked.findings));
}

/// Where the fast YAML path takes a text, it builds the full parser's tree.
fn yaml_fast(b: &[u8]) {
    if let Err(e) = roster::roster::yaml::fast_path_agrees(&text(b)) {
        panic!("{e}");
    }
}

/// Parse a filter; what parses renders and parses again the same.
fn scim_filter(b: &[u8]) {
    let s = text(b);
    if let Ok(f) = filter::parse(&s)
        && let Ok(rendered) = filter::render(&f)
    {
        let again = filter::parse(&rendered);
        assert!(
            again.is_ok(),
            "{s:?} rendered as {rendered:?}, which does not parse"
        );
    }
    let _ = filter::parse_path(&s);
}

fn sample_user() -> Value {
    serde_json::json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                    "urn:roster:params:scim:schemas:extension:roster:2.0:User"],
        "id": "17",
        "userName": "MMcCray",
        "name": {"givenName": "Mandy", "familyName": "McCray"},
        "emails": [{"value": "mandy@example.com", "primary": true},
                   {"value": "m@example.org", "type": "work"}],
        "phoneNumbers": [{"value": "217-852-9634"}],
        "active": true,
        "roles": [{"value": "public-viewer"}],
        "groups": [{"value": "3", "display": "ABC"}],
        "urn:roster:params:scim:schemas:extension:roster:2.0:User":
            {"birthDate": "1972-09-01", "postalCode": "62568"},
        "meta": {"resourceType": "User", "version": "W/\"1\""}
    })
}

/// A PATCH body: operations read, then applied to a sample user; the text
/// as a path too.
fn patch_body(b: &[u8]) {
    let s = text(b);
    let _ = patch::parse_path(&s);
    if let Ok(body) = serde_json::from_str::<Value>(&s)
        && let Ok(ops) = patch::operations(&body)
    {
        let mut user = sample_user();
        let _ = patch::apply(&mut user, &ops);
    }
}

/// An `attributes` / `excludedAttributes` list.
fn attributes(b: &[u8]) {
    let s = text(b);
    let paths: Vec<patch::Path> = s
        .split(',')
        .filter_map(|p| patch::parse_path(p.trim()).ok())
        .collect();
    std::hint::black_box(patch::project(sample_user(), &paths, &[]));
    std::hint::black_box(patch::project(sample_user(), &[], &paths));
}

/// A saved plan as `roster apply PLAN.json` reads it, then rendered.
fn saved_plan(b: &[u8]) {
    let s = text(b);
    if let Ok(plan) = roster::cli::apply::parse_plan(&s) {
        std::hint::black_box(roster::plan::render::human(&plan, false));
        std::hint::black_box(roster::plan::render::markdown(&plan));
    }
}

fn repo(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(p)
}

fn files(paths: &[&str]) -> Vec<Vec<u8>> {
    paths
        .iter()
        .filter_map(|p| std::fs::read(repo(p)).ok())
        .collect()
}

/// Tokens of YAML and of roster files, inserted by the YAML targets' mutations.
const YAML_TOKENS: &[&str] = &[
    "\n",
    "  ",
    "- ",
    ": ",
    "&a ",
    "*a",
    "!!str ",
    "{",
    "}",
    "[",
    "]",
    "\"",
    "'",
    "#",
    "|\n",
    ">-\n",
    "? ",
    "---\n",
    "...\n",
    "\t",
    "version: 1\n",
    "groups:\n",
    "partners:\n",
    "policy:\n",
    "members:\n",
    "birth_date: ",
    "phone: ",
    "email: ",
    "account: ",
    "user_manager: true",
    "extension: ",
    "name: ",
    "lwia: ",
    "~",
    "null",
    "1985-04-ẞ17",
    "\"\\e[31m\"",
    "\"\\u202e\"",
    "0x1F",
    "1e999",
    "<<: *a\n",
];

pub fn targets() -> Vec<Target> {
    let mut yaml_seeds = files(&[
        "examples/worknet/roster.yaml",
        "examples/worknet-live/roster.yaml",
        "examples/worknet-split/policy.yaml",
    ]);
    yaml_seeds.extend(
        [
            "version: 1\ngroups:\n  - name: ABC\n    members:\n      - mandy@example.com\npartners:\n  - email: mandy@example.com\n    first_name: Mandy\n    last_name: McCray\n    birth_date: 1972-09-01\n    phone: \"217-852-9634\"\n    zip: \"62568\"\n",
            "version: 1\npartners:\n  - { email: a@b.c, first_name: A, last_name: B, birth_date: 1985-04-17, phone: \"ééééé\", extension: '12' }\n",
            "version: 1\npolicy:\n  max_removals: 3\n  unmanaged_groups: warn\n  restrictions:\n    - files: \"agencies/*.yaml\"\n      groups: \"^A.*$\"\n",
            "a: &a [*a, *a]\nb: *a\n",
        ]
        .map(|s| s.as_bytes().to_vec()),
    );
    // The differential target starts from files in plain block style too,
    // the subset the fast path takes.
    let mut yaml_fast_seeds = yaml_seeds.clone();
    yaml_fast_seeds.extend(files(&[
        "examples/staffing/roster.yaml",
        "examples/case-management/roster.yaml",
        "examples/case-management/live.yaml",
    ]));
    let filter_seeds = [
        "userName eq \"bjensen\"",
        "name.familyName co \"O'Malley\"",
        "userName sw \"J\"",
        "title pr and userType eq \"Employee\"",
        "emails[type eq \"work\" and value co \"@example.com\"] or ims[type eq \"xmpp\"]",
        "not (userName eq \"x\") and meta.lastModified gt \"2011-05-13T04:42:34Z\"",
        "urn:roster:params:scim:schemas:extension:roster:2.0:User:birthDate eq \"1972-09-01\"",
        "groups.display co \"ABC\" or active eq true or externalId le \"\\u0000\"",
        "members[value eq \"17\"].display ne null",
    ]
    .map(|s| s.as_bytes().to_vec())
    .to_vec();
    let patch_seeds = [
        r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"name.givenName","value":"Mandi"}]}"#,
        r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"emails","value":[{"value":"x@y.z","type":"home"}]},{"op":"remove","path":"emails[type eq \"work\"]"}]}"#,
        r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false,"name":{"familyName":"X"}}}]}"#,
        r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"urn:roster:params:scim:schemas:extension:roster:2.0:User:birthDate","value":"1972-09-02"},{"op":"remove","path":"phoneNumbers[value eq \"217-852-9634\"].value"}]}"#,
        r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Add","path":"members","value":[{"value":"9"}]},{"op":"remove","path":"members[value eq \"3\"]"},{"op":"replace","path":"emails[primary eq true].value","value":"n@e.w"}]}"#,
        "emails[type eq \"work\"].value",
        "urn:roster:params:scim:schemas:extension:roster:2.0:User",
    ]
    .map(|s| s.as_bytes().to_vec())
    .to_vec();
    let attr_seeds = [
        "userName,emails.value,name.givenName",
        "urn:roster:params:scim:schemas:extension:roster:2.0:User:birthDate,groups",
        "members.display , meta.version,id,schemas",
        "urn:roster:params:scim:schemas:extension:roster:2.0:User,emails[type eq \"work\"]",
        "abcé",
    ]
    .map(|s| s.as_bytes().to_vec())
    .to_vec();
    let plan_seeds = files(&[
        "benches/fuzz-seeds/create.json",
        "benches/fuzz-seeds/mixed.json",
    ]);
    vec![
        Target {
            name: "yaml",
            seeds: yaml_seeds,
            tokens: YAML_TOKENS,
            run: yaml,
        },
        Target {
            name: "yaml-fast",
            seeds: yaml_fast_seeds,
            tokens: YAML_TOKENS,
            run: yaml_fast,
        },
        Target {
            name: "filter",
            seeds: filter_seeds,
            tokens: &[
                " eq ",
                " ne ",
                " co ",
                " sw ",
                " ew ",
                " gt ",
                " ge ",
                " lt ",
                " le ",
                " pr",
                " and ",
                " or ",
                "not ",
                "(",
                ")",
                "[",
                "]",
                "\"",
                "\\",
                "\\u00",
                ".",
                ":",
                "true",
                "false",
                "null",
                "1e400",
                "-0",
                "userName",
                "emails",
                "urn:a:b:",
                "groups.display",
            ],
            run: scim_filter,
        },
        Target {
            name: "patch",
            seeds: patch_seeds,
            tokens: &[
                "{",
                "}",
                "[",
                "]",
                "\"",
                ",",
                ":",
                "\"op\":",
                "\"path\":",
                "\"value\":",
                "\"add\"",
                "\"remove\"",
                "\"replace\"",
                "null",
                "true",
                "[]",
                "{}",
                ".value",
                "[value eq \"1\"]",
                "members",
                "emails",
                "urn:roster:params:scim:schemas:extension:roster:2.0:User:",
                "\"Operations\":",
                "1e999",
                "\\u0000",
                "é",
            ],
            run: patch_body,
        },
        Target {
            name: "attributes",
            seeds: attr_seeds,
            tokens: &[
                ",",
                ".",
                ":",
                "[",
                "]",
                " ",
                "emails",
                "value",
                "name",
                "urn:",
                "groups",
                "members",
                "meta",
                "id",
                "schemas",
                " eq \"x\"",
                "é",
                "$ref",
            ],
            run: attributes,
        },
        Target {
            name: "plan",
            seeds: plan_seeds,
            tokens: &[
                "{",
                "}",
                "[",
                "]",
                "\"",
                ",",
                ":",
                "null",
                "\"op\":",
                "\"account\":",
                "\"group\":",
                "\"remove_membership\"",
                "\"create_account\"",
                "\"grant_user_manager\"",
                "\"deactivate_account\"",
                "\"removal_limit\":",
                "18446744073709551615",
                "-1",
                "1e999",
                "\"\\u001b[31m\"",
                "\"\\r\"",
                "\"resolutions\":",
                "\"outcome\":",
                "\"candidates\":",
            ],
            run: saved_plan,
        },
    ]
}

/// The last panic's message and place, kept by the hook for the report.
static LAST_PANIC: Mutex<String> = Mutex::new(String::new());

/// What one target's run found.
pub struct Outcome {
    pub name: &'static str,
    pub inputs: u64,
    pub panics: u64,
    pub secs: f64,
}

/// Run `iters` inputs through `t`; panics are saved under
/// `target/fuzz-crashes/NAME-N.bin` with their message beside.
pub fn run(t: &Target, iters: u64, seed: u64) -> Outcome {
    let mut rng = Rng::new(seed ^ fnv(t.name));
    let mut input = Vec::new();
    let mut panics = 0;
    let started = Instant::now();
    // The seeds themselves first.
    for i in 0..iters {
        if (i as usize) < t.seeds.len() {
            input.clear();
            input.extend_from_slice(&t.seeds[i as usize]);
        } else {
            mutate(&mut rng, t, &mut input);
        }
        FUZZING.with(|f| f.set(true));
        let result = catch_unwind(AssertUnwindSafe(|| (t.run)(&input)));
        FUZZING.with(|f| f.set(false));
        if result.is_err() {
            panics += 1;
            let message = LAST_PANIC.lock().map(|m| m.clone()).unwrap_or_default();
            let dir = repo("target/fuzz-crashes");
            let _ = std::fs::create_dir_all(&dir);
            let file = dir.join(format!("{}-{:016x}.bin", t.name, fnv_bytes(&input)));
            let _ = std::fs::write(&file, &input);
            let _ = std::fs::write(file.with_extension("txt"), &message);
            eprintln!(
                "{}: panic on input {i}: {message}\n  saved: {}",
                t.name,
                file.display()
            );
        }
    }
    Outcome {
        name: t.name,
        inputs: iters,
        panics,
        secs: started.elapsed().as_secs_f64(),
    }
}

fn fnv(s: &str) -> u64 {
    fnv_bytes(s.as_bytes())
}

fn fnv_bytes(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325, |h, &x| {
        (h ^ u64::from(x)).wrapping_mul(0x100_0000_01b3)
    })
}

thread_local! {
    /// Set while this thread runs fuzz inputs: only their panics are kept
    /// quiet (other tests of the same binary print theirs as usual).
    static FUZZING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Keep fuzz inputs' panic messages for the report instead of printing each.
pub fn quiet_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if FUZZING.with(|f| f.get()) {
                if let Ok(mut m) = LAST_PANIC.lock() {
                    *m = format!("{info}");
                }
            } else {
                prev(info);
            }
        }));
    });
}

/// Peak resident memory of this process, from /proc/self/status (Linux).
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// A short run of every target, for the test suite: no panic allowed.
pub fn smoke(iters: u64) {
    quiet_panics();
    let mut found = Vec::new();
    for t in targets() {
        assert!(!t.seeds.is_empty(), "{}: no seeds", t.name);
        let o = run(&t, iters, 0x5eed);
        if o.panics > 0 {
            found.push(format!("{}: {} panics", o.name, o.panics));
        }
    }
    assert!(
        found.is_empty(),
        "{found:?}; inputs saved under target/fuzz-crashes/"
    );
}

fn main() {
    let iters: u64 = std::env::var("ROSTER_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let seed: u64 = std::env::var("ROSTER_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed);
    let only = std::env::var("ROSTER_FUZZ_TARGETS").ok();
    // `cargo bench` passes `--bench`; nothing else is taken.
    quiet_panics();
    let mut total_panics = 0;
    println!(
        "{:<11} {:>10} {:>9} {:>11} {:>7}",
        "target", "inputs", "seconds", "inputs/s", "panics"
    );
    for t in targets() {
        if only
            .as_deref()
            .is_some_and(|o| !o.split(',').any(|n| n == t.name))
        {
            continue;
        }
        let o = run(&t, iters, seed);
        total_panics += o.panics;
        println!(
            "{:<11} {:>10} {:>9.1} {:>11.0} {:>7}",
            o.name,
            o.inputs,
            o.secs,
            o.inputs as f64 / o.secs.max(1e-9),
            o.panics
        );
    }
    println!(
        "peak RSS (VmHWM): {} MiB; seed {seed}",
        peak_rss_kib().map_or("?".into(), |k| (k / 1024).to_string())
    );
    if total_panics > 0 {
        eprintln!("{total_panics} panics; inputs saved under target/fuzz-crashes/");
        std::process::exit(1);
    }
}
