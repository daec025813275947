//! Generates a large, valid roster for benchmarks:
//! `cargo run --release --example gen-roster -- [PARTNERS] [GROUPS] [MEMBERSHIPS] > big.yaml`
//! Defaults: 100,000 partners, 5,000 groups, 300,000 memberships. Deterministic.

use std::io::{BufWriter, Write};

const FIRST: [&str; 16] = [
    "Mandy", "Ashley", "Jordan", "José", "Priya", "Chen", "Fatima", "Liam", "Olga", "Kwame",
    "Sofia", "Mateo", "Aisha", "Noah", "Yuki", "Grace",
];
const LAST: [&str; 16] = [
    "McCray", "Wrigley", "Jones", "Núñez", "Raman", "Li", "Haddad", "Murphy", "Petrova", "Mensah",
    "Rossi", "García", "Khan", "Smith", "Tanaka", "O'Neil",
];

fn main() -> std::io::Result<()> {
    let arg = |i: usize, d: usize| {
        std::env::args()
            .nth(i)
            .and_then(|s| s.replace('_', "").parse().ok())
            .unwrap_or(d)
    };
    let (partners, groups, memberships) = (arg(1, 100_000), arg(2, 5_000), arg(3, 300_000));
    let mut w = BufWriter::new(std::io::stdout().lock());
    writeln!(w, "version: 1")?;
    writeln!(w, "groups:")?;
    let per_group = memberships / groups.max(1);
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for g in 0..groups {
        writeln!(w, "  - name: Agency {g:05}")?;
        writeln!(w, "    lwia: {}", g % 30)?;
        writeln!(w, "    members:")?;
        // Consecutive partners, wrapping: every partner lands in some group
        // and no group lists a partner twice.
        let start = (g * per_group) % partners.max(1);
        for k in 0..per_group.min(partners) {
            let p = (start + k) % partners;
            if k == 0 {
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
    for p in 0..partners {
        let r = next();
        let first = FIRST[(r % 16) as usize];
        let last = LAST[((r >> 8) % 16) as usize];
        writeln!(w, "  - email: p{p}@example.org")?;
        writeln!(w, "    first_name: {first}")?;
        writeln!(w, "    last_name: \"{last}\"")?;
        writeln!(
            w,
            "    birth_date: {}-{:02}-{:02}",
            1950 + (r >> 16) % 50,
            1 + (r >> 24) % 12,
            1 + (r >> 32) % 28
        )?;
        writeln!(
            w,
            "    phone: \"217-{:03}-{:04}\"",
            (r >> 40) % 1000,
            p % 10_000
        )?;
        writeln!(w, "    zip: \"{:05}\"", 60_000 + (r >> 20) % 3_000)?;
    }
    writeln!(w, "policy:\n  min_user_managers: 1")?;
    w.flush()
}
