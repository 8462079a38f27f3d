//! `veilctl status | unlock | locks`: the lockout ledger, for the admin.

use serde::Serialize;

use veil_daemon::common::ledger;

use crate::Ctx;
use crate::error::Failure;
use crate::output::{EntryView, print_entries, print_json};

/// `status NAME`: every live counter of one user.
pub fn status(ctx: &Ctx, name: &str, json: bool) -> Result<(), Failure> {
    let mut store = ctx.open()?;
    let known = store.user(name)?.is_some();
    let recovery_left = crate::steps::left(store.as_ref(), name)?;
    let entries = store.status(&ctx.limits, name, ctx.now)?;
    crate::account::warn(ctx, &[name]);
    if json {
        #[derive(Serialize)]
        struct Status<'a> {
            user: &'a str,
            enrolled: bool,
            recovery_codes_left: u32,
            counters: Vec<EntryView>,
        }
        print_json(&Status {
            user: name,
            enrolled: known,
            recovery_codes_left: recovery_left,
            counters: entries.iter().map(|e| EntryView::of(e, ctx.now)).collect(),
        })
    } else {
        println!(
            "user {name}: {}",
            if known { "enrolled" } else { "not a veil user" }
        );
        if known {
            println!("recovery codes left: {recovery_left}");
        }
        print_entries(&entries, ctx.now);
        Ok(())
    }
}

/// `unlock NAME` or `unlock --source SOURCE`.
pub fn unlock(ctx: &Ctx, name: Option<String>, source: Option<String>) -> Result<(), Failure> {
    let mut store = ctx.open()?;
    let (what, n) = match (name, source) {
        (_, Some(src)) => (
            format!("source {src}"),
            store.unlock_source(&ledger::source_from_admin(&ctx.limits.sources, &src))?,
        ),
        (Some(user), None) => (format!("user {user}"), store.unlock_user(&user)?),
        (None, None) => return Err(Failure::usage("name a user or --source ADDR")),
    };
    eprintln!("veilctl: cleared {n} counter(s) of {what}");
    Ok(())
}

/// `locks`: every lock in force.
pub fn locks(ctx: &Ctx, json: bool) -> Result<(), Failure> {
    let entries = ctx.open()?.locks(&ctx.limits, ctx.now)?;
    if json {
        print_json(
            &entries
                .iter()
                .map(|e| EntryView::of(e, ctx.now))
                .collect::<Vec<_>>(),
        )
    } else {
        if entries.is_empty() {
            println!("no locks");
        } else {
            print_entries(&entries, ctx.now);
        }
        Ok(())
    }
}
