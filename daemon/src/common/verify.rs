//! The verification pipeline, run by one worker thread per core. Every
//! request that decodes does the same work whoever the user is: ledger
//! reservation, one argon2id verify (the dummy hash for unknown users),
//! one TOTP check over the same number of steps (a dummy secret when the
//! user has none), and the same ledger writes.

use std::path::PathBuf;

use veil_proto::{Reply, ReplyState, Request, Verdict};

use crate::common::config::{Config, TotpPolicy};
use crate::common::ledger::{self, Key, Limits, Origin, Refusal};
use crate::common::password::{HashError, Hasher, Memory};
use crate::common::peer::{self, Peer};
use crate::common::store::{self, OpenMode, Store, Success, UserRecord};
use crate::common::totp::{self, CodeCheck};

/// The real reason behind a verdict; only the audit log sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    Success,
    PeerNotPermitted,
    Locked(Refusal),
    UnknownUser,
    WrongPassword,
    /// A reply the conversation did not give, or one longer than the
    /// wire carries: verified like any other, and never a match.
    UnusableReply {
        field: &'static str,
        state: ReplyState,
    },
    NoTotp,
    WrongCode,
    ReplayedCode,
    Store(String),
    /// The check itself failed (a panic caught by the worker): a bug.
    Internal,
}

impl Reason {
    pub fn as_str(&self) -> &'static str {
        match self {
            Reason::Success => "success",
            Reason::PeerNotPermitted => "peer-not-permitted",
            Reason::Locked(_) => "locked",
            Reason::UnknownUser => "unknown-user",
            Reason::WrongPassword => "wrong-password",
            Reason::UnusableReply { field, state } => match (*field, state) {
                ("password", ReplyState::Overlong) => "overlong-password",
                ("password", _) => "no-password",
                (_, ReplyState::Overlong) => "overlong-code",
                _ => "no-code",
            },
            Reason::NoTotp => "no-totp-enrolled",
            Reason::WrongCode => "wrong-code",
            Reason::ReplayedCode => "replayed-code",
            Reason::Store(_) => "store-error",
            Reason::Internal => "internal-error",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub verdict: Verdict,
    pub reason: Reason,
    /// Keys this failure locked.
    pub locked: Vec<Key>,
}

/// One worker's verifier: its own database connection, the shared dummy record.
pub struct Verifier {
    limits: Limits,
    policy: TotpPolicy,
    skew: u8,
    hasher: Hasher,
    dummy: UserRecord,
    database: PathBuf,
    store: Option<Box<dyn Store>>,
    memory: Memory,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("database", &self.database)
            .finish_non_exhaustive()
    }
}

/// The record an unknown name is checked against: a hash of random bytes
/// made at start with the current parameters, and a random TOTP secret.
pub fn dummy_record(hasher: &Hasher) -> Result<UserRecord, HashError> {
    Ok(UserRecord {
        phc: hasher.dummy()?,
        totp_secret: Some(totp::new_secret().map_err(HashError::Random)?),
        totp_last_step: -1,
    })
}

impl Verifier {
    pub fn new(config: &Config, hasher: Hasher, dummy: UserRecord) -> Verifier {
        Verifier {
            limits: Limits::from(&config.lockout),
            policy: config.totp.policy,
            skew: config.totp.skew,
            hasher,
            dummy,
            database: config.database.clone(),
            store: None,
            memory: Memory::default(),
        }
    }

    /// The store, reopened if it was never opened or the file was deleted
    /// or replaced. A missing file is never recreated here.
    fn store(&mut self) -> Result<&mut dyn Store, String> {
        if self.store.as_ref().is_some_and(|s| !s.still_usable()) {
            self.store = None;
        }
        if self.store.is_none() {
            let mut store =
                store::open(&self.database, OpenMode::MustExist).map_err(|e| e.to_string())?;
            // Written on every open, so a restored or replaced file has it too.
            store
                .put_dummy(&self.dummy, 0)
                .map_err(|e| format!("writing the dummy row: {e}"))?;
            self.store = Some(store);
        }
        match self.store.as_mut() {
            Some(store) => Ok(store.as_mut()),
            None => Err("no store".to_owned()),
        }
    }

    /// Decides one request at Unix time `now`.
    pub fn decide(&mut self, request: &Request, peer: Peer, now: u64) -> Decision {
        let now_i = now.min(i64::MAX as u64) as i64;
        let permitted = peer::permits(peer, &request.user);
        let limits = self.limits.clone();
        let charge = charge_of(&limits, request, peer, permitted);

        let mut store_error: Option<String> = None;
        let reservation = match self.store() {
            Ok(store) => match store.reserve(&limits, charge, now_i) {
                Ok(r) => Some(r),
                Err(e) => {
                    store_error = Some(format!("ledger: {e}"));
                    None
                }
            },
            Err(e) => {
                store_error = Some(e);
                None
            }
        };
        // One row read either way: the user's, or the dummy row veild
        // wrote at start; the in-memory copy only if the store failed.
        let (row, found) = match self.store.as_ref().map(|s| s.user_or_dummy(&request.user)) {
            Some(Ok(Some((row, found)))) => (Some(row), found),
            Some(Ok(None)) => {
                store_error.get_or_insert("users: the dummy row is missing".to_owned());
                (None, false)
            }
            Some(Err(e)) => {
                store_error.get_or_insert(format!("users: {e}"));
                (None, false)
            }
            None => (None, false),
        };
        let record = if found { row.as_ref() } else { None };

        // The same work for every request from here on.
        let subject = row.as_ref().unwrap_or(&self.dummy);
        let password_ok =
            self.hasher
                .verify_with(&mut self.memory, &subject.phc, request.password.bytes());
        let enrolled = subject.totp_secret.is_some();
        let secret: &[u8] = subject
            .totp_secret
            .as_deref()
            .or(self.dummy.totp_secret.as_deref())
            .map_or(&[], Vec::as_slice);
        let code = totp::check(
            secret,
            request.code.bytes(),
            now,
            self.skew,
            subject.totp_last_step,
        );

        let reason = if let Some(e) = store_error {
            Reason::Store(e)
        } else if !permitted {
            Reason::PeerNotPermitted
        } else if let Some(refusal) = reservation.as_ref().and_then(|r| r.refused.clone()) {
            Reason::Locked(refusal)
        } else if record.is_none() {
            Reason::UnknownUser
        } else if let Some(unusable) = unusable("password", &request.password) {
            unusable
        } else if !password_ok {
            Reason::WrongPassword
        } else if !enrolled && self.policy == TotpPolicy::Required {
            Reason::NoTotp
        } else if !enrolled {
            Reason::Success
        } else if let Some(unusable) = unusable("code", &request.code) {
            unusable
        } else {
            match code {
                CodeCheck::Accepted(_) => Reason::Success,
                CodeCheck::Replayed => Reason::ReplayedCode,
                CodeCheck::Wrong => Reason::WrongCode,
            }
        };

        let reason = match (reason, reservation.as_ref(), record) {
            (Reason::Success, Some(res), Some(rec)) => {
                self.commit_success(request, res, rec, code, now_i)
            }
            (other, _, _) => other,
        };
        let locked = match (&reason, &reservation) {
            (Reason::Success, _) | (_, None) => Vec::new(),
            (_, Some(r)) => r.locking.clone(),
        };
        let verdict = if reason == Reason::Success {
            Verdict::Allow
        } else {
            Verdict::Deny
        };
        Decision {
            verdict,
            reason,
            locked,
        }
    }

    /// The writes of a success, in one transaction (one fsync): the code's
    /// step (compare-and-set, so a code racing itself wins once), the
    /// ledger, and a rehash if the parameters changed.
    fn commit_success(
        &mut self,
        request: &Request,
        reservation: &ledger::Reservation,
        record: &UserRecord,
        code: CodeCheck,
        now: i64,
    ) -> Reason {
        let limits = self.limits.clone();
        // Hashed before the transaction, so the write lock is not held for it.
        let new_hash = if self.hasher.needs_rehash(&record.phc) {
            self.hasher.hash(request.password.bytes()).ok()
        } else {
            None
        };
        let Ok(store) = self.store() else {
            return Reason::Store("store vanished".into());
        };
        let step = match code {
            CodeCheck::Accepted(step) if record.totp_secret.is_some() => Some(step),
            _ => None,
        };
        let success = Success {
            user: &request.user,
            step,
            reservation,
            new_hash: new_hash.as_deref(),
            now,
        };
        match store.commit_success(&limits, &success) {
            Ok(true) => Reason::Success,
            Ok(false) => Reason::ReplayedCode,
            Err(e) => Reason::Store(format!("success writes: {e}")),
        }
    }

    /// Deletes expired ledger rows.
    pub fn prune(&mut self, now: u64) -> Result<usize, String> {
        let limits = self.limits.clone();
        let store = self.store()?;
        store
            .prune(&limits, now.min(i64::MAX as u64) as i64)
            .map_err(|e| e.to_string())
    }
}

/// A reply that can never match: missing, or cut to the wire's size.
fn unusable(field: &'static str, reply: &Reply) -> Option<Reason> {
    (!reply.is_whole()).then_some(Reason::UnusableReply {
        field,
        state: reply.state(),
    })
}

/// Who an attempt is charged to. Only root (sshd, sudo, su, login) speaks
/// for a remote host or a caller; a local user's own program (a screen
/// locker) is charged to its uid, and a local user naming someone else's
/// account only to itself, so no local account can run up, let alone
/// lock, another account's or a host's keys.
pub fn charge_of(
    limits: &Limits,
    request: &Request,
    peer: Peer,
    permitted: bool,
) -> ledger::Charge {
    match (peer.uid, permitted) {
        (0, _) => ledger::charge_for(
            limits,
            &request.user,
            &Origin::from_root(&request.rhost, &request.ruser),
        ),
        (uid, true) => ledger::charge_for(limits, &request.user, &Origin::local_uid(uid)),
        (uid, false) => ledger::peer_charge(uid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use veil_proto::Reply;
    use zeroize::Zeroizing;

    struct Fixture {
        _dir: tempfile::TempDir,
        verifier: Verifier,
        secret: Zeroizing<Vec<u8>>,
    }

    const NOW: u64 = 1_700_000_000;
    const ROOT: Peer = Peer { uid: 0, pid: 1 };

    fn fixture(policy: TotpPolicy) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config {
            database: dir.path().join("v.db"),
            ..Config::default()
        };
        config.argon2 = crate::common::config::Argon2 {
            m_cost_kib: 64,
            t_cost: 1,
            p_cost: 1,
        };
        config.lockout.deny = 3;
        config.totp.policy = policy;
        let hasher = Hasher::new(&config.argon2).unwrap();
        let mut store = store::open(&config.database, OpenMode::CreateIfMissing).unwrap();
        store
            .add_user("alice", &hasher.hash(b"right").unwrap(), 0)
            .unwrap();
        let secret = totp::new_secret().unwrap();
        store.set_totp_pending("alice", &secret, 0).unwrap();
        store.activate_totp("alice", -1, 0).unwrap();
        store
            .add_user("nototp", &hasher.hash(b"right").unwrap(), 0)
            .unwrap();
        let dummy = dummy_record(&hasher).unwrap();
        Fixture {
            _dir: dir,
            verifier: Verifier::new(&config, hasher, dummy),
            secret,
        }
    }

    fn ask(f: &mut Fixture, user: &str, password: &str, code: &str, now: u64) -> Decision {
        let req = Request::new(user, Reply::from(password), Reply::from(code));
        f.verifier.decide(&req, ROOT, now)
    }

    fn code(f: &Fixture, now: u64) -> String {
        totp::code_at(&f.secret, totp::step_of(now)).to_string()
    }

    #[test]
    fn right_password_and_code_allow() {
        let mut f = fixture(TotpPolicy::Required);
        let c = code(&f, NOW);
        let d = ask(&mut f, "alice", "right", &c, NOW);
        assert_eq!((d.verdict, d.reason), (Verdict::Allow, Reason::Success));
    }

    #[test]
    fn every_failure_is_a_deny_with_its_own_audit_reason() {
        let mut f = fixture(TotpPolicy::Required);
        let c = code(&f, NOW);
        assert_eq!(
            ask(&mut f, "ghost", "right", &c, NOW).reason,
            Reason::UnknownUser
        );
        assert_eq!(
            ask(&mut f, "alice", "wrong", &c, NOW).reason,
            Reason::WrongPassword
        );
        assert_eq!(
            ask(&mut f, "alice", "right", "000000", NOW + 300).reason,
            Reason::WrongCode
        );
        assert_eq!(
            ask(&mut f, "nototp", "right", "123456", NOW).reason,
            Reason::NoTotp
        );
        assert_eq!(ask(&mut f, "ghost", "x", "1", NOW).verdict, Verdict::Deny);
    }

    #[test]
    fn a_replayed_code_is_denied() {
        let mut f = fixture(TotpPolicy::Required);
        let c = code(&f, NOW);
        assert_eq!(
            ask(&mut f, "alice", "right", &c, NOW).verdict,
            Verdict::Allow
        );
        assert_eq!(
            ask(&mut f, "alice", "right", &c, NOW + 1).reason,
            Reason::ReplayedCode
        );
    }

    #[test]
    fn the_correct_password_while_locked_is_denied_and_unlock_ends_it() {
        let mut f = fixture(TotpPolicy::Required);
        for _ in 0..3 {
            ask(&mut f, "alice", "wrong", "000000", NOW);
        }
        let c = code(&f, NOW);
        let d = ask(&mut f, "alice", "right", &c, NOW);
        assert!(matches!(d.reason, Reason::Locked(_)), "{:?}", d.reason);
        let store = f.verifier.store().unwrap();
        store.unlock_user("alice").unwrap();
        assert_eq!(
            ask(&mut f, "alice", "right", &c, NOW).verdict,
            Verdict::Allow
        );
    }

    #[test]
    fn unknown_names_lock_exactly_like_real_ones() {
        let mut f = fixture(TotpPolicy::Required);
        let mut known = Vec::new();
        let mut unknown = Vec::new();
        for _ in 0..4 {
            known.push(ask(&mut f, "alice", "wrong", "000000", NOW));
            unknown.push(ask(&mut f, "ghost", "wrong", "000000", NOW));
        }
        let locked = |v: &[Decision]| {
            v.iter()
                .map(|d| matches!(d.reason, Reason::Locked(_)))
                .collect::<Vec<_>>()
        };
        assert_eq!(locked(&known), locked(&unknown));
        assert_eq!(locked(&known), [false, false, false, true]);
        assert_eq!(known[2].locked.len(), 1);
        assert_eq!(unknown[2].locked.len(), 1);
    }

    #[test]
    fn if_enrolled_lets_a_user_without_totp_in_on_the_password() {
        let mut f = fixture(TotpPolicy::IfEnrolled);
        assert_eq!(
            ask(&mut f, "nototp", "right", "", NOW).verdict,
            Verdict::Allow
        );
        assert_eq!(
            ask(&mut f, "alice", "right", "", NOW).reason,
            Reason::WrongCode
        );
    }

    #[test]
    fn a_non_root_peer_cannot_ask_about_another_user() {
        let mut f = fixture(TotpPolicy::Required);
        let c = code(&f, NOW);
        let req = Request::new("alice", Reply::from("right"), Reply::from(c.as_str()));
        let d = f.verifier.decide(&req, Peer { uid: 65534, pid: 9 }, NOW);
        assert_eq!(
            (d.verdict, d.reason),
            (Verdict::Deny, Reason::PeerNotPermitted)
        );
    }

    #[test]
    fn a_local_user_cannot_lock_another_account_or_a_host() {
        let mut f = fixture(TotpPolicy::Required);
        let nobody = Peer { uid: 65534, pid: 9 };
        for i in 0..10 {
            let mut req = Request::new("alice", Reply::from("wrong"), Reply::from("000000"));
            req.rhost = format!("198.51.100.{i}");
            assert_eq!(f.verifier.decide(&req, nobody, NOW).verdict, Verdict::Deny);
        }
        let limits = f.verifier.limits.clone();
        let store = f.verifier.store().unwrap();
        let alice = store.status(&limits, "alice", NOW as i64).unwrap();
        assert!(alice.is_empty(), "alice's keys were charged: {alice:?}");
        let locks = store.locks(&limits, NOW as i64).unwrap();
        assert_eq!(locks.len(), 1);
        assert_eq!(locks[0].key.to_string(), "peer:uid:65534");
        let c = code(&f, NOW);
        assert_eq!(
            ask(&mut f, "alice", "right", &c, NOW).verdict,
            Verdict::Allow
        );
    }

    #[test]
    fn old_parameters_are_rehashed_on_success() {
        let mut f = fixture(TotpPolicy::IfEnrolled);
        let old = Hasher::new(&crate::common::config::Argon2 {
            m_cost_kib: 32,
            t_cost: 1,
            p_cost: 1,
        })
        .unwrap();
        let store = f.verifier.store().unwrap();
        store
            .set_password("nototp", &old.hash(b"right").unwrap(), 0)
            .unwrap();
        assert_eq!(
            ask(&mut f, "nototp", "right", "", NOW).verdict,
            Verdict::Allow
        );
        let phc = f
            .verifier
            .store()
            .unwrap()
            .user("nototp")
            .unwrap()
            .unwrap()
            .phc;
        assert!(phc.contains("m=64,t=1,p=1"), "{phc}");
    }

    #[test]
    fn a_deleted_database_denies_and_a_restored_one_recovers() {
        let mut f = fixture(TotpPolicy::IfEnrolled);
        let path = f.verifier.database.clone();
        assert_eq!(
            ask(&mut f, "nototp", "right", "", NOW).verdict,
            Verdict::Allow
        );
        let saved = std::fs::read(&path).unwrap();
        std::fs::rename(&path, path.with_extension("moved")).unwrap();
        let d = ask(&mut f, "nototp", "right", "", NOW);
        assert!(matches!(d.reason, Reason::Store(_)), "{:?}", d.reason);
        assert!(!path.exists(), "never recreated");
        std::fs::rename(path.with_extension("moved"), &path).unwrap();
        let _ = saved;
        assert_eq!(
            ask(&mut f, "nototp", "right", "", NOW + 1).verdict,
            Verdict::Allow
        );
    }

    fn ask_replies(
        f: &mut Fixture,
        user: &str,
        password: Reply,
        code: Reply,
        now: u64,
    ) -> Decision {
        let req = Request::new(user, password, code);
        f.verifier.decide(&req, ROOT, now)
    }

    #[test]
    fn a_reply_cut_to_the_wire_size_never_matches_even_when_its_prefix_is_the_password() {
        let mut f = fixture(TotpPolicy::IfEnrolled);
        let long = vec![b'a'; veil_proto::REPLY_CAP];
        let phc = f.verifier.hasher.hash(&long).unwrap();
        f.verifier
            .store()
            .unwrap()
            .add_user("longpw", &phc, 0)
            .unwrap();
        let exact = ask_replies(
            &mut f,
            "longpw",
            Reply::given(long.clone()),
            Reply::from(""),
            NOW,
        );
        assert_eq!(exact.reason, Reason::Success);
        let mut longer = long;
        longer.push(b'a');
        let cut = ask_replies(&mut f, "longpw", Reply::given(longer), Reply::from(""), NOW);
        assert_eq!(cut.verdict, Verdict::Deny);
        assert_eq!(cut.reason.as_str(), "overlong-password");
    }

    #[test]
    fn missing_and_non_utf8_replies_are_verified_and_denied_with_their_reason() {
        let mut f = fixture(TotpPolicy::Required);
        let c = code(&f, NOW);
        let no_password = ask_replies(
            &mut f,
            "alice",
            Reply::missing(),
            Reply::from(c.as_str()),
            NOW,
        );
        assert_eq!(no_password.reason.as_str(), "no-password");
        let no_code = ask_replies(&mut f, "alice", Reply::from("right"), Reply::missing(), NOW);
        assert_eq!(no_code.reason.as_str(), "no-code");
        let bytes = ask_replies(
            &mut f,
            "alice",
            Reply::given(vec![0xff]),
            Reply::given(vec![0xc3, 0x28]),
            NOW,
        );
        assert_eq!(bytes.reason, Reason::WrongPassword);
        // An unknown name says unknown-user whatever its replies were.
        let ghost = ask_replies(&mut f, "ghost", Reply::missing(), Reply::missing(), NOW);
        assert_eq!(ghost.reason, Reason::UnknownUser);
        for d in [no_password, no_code, bytes, ghost] {
            assert_eq!(d.verdict, Verdict::Deny);
        }
    }

    #[test]
    fn root_front_ends_are_charged_to_their_caller_and_sshd_to_its_host() {
        let limits = Limits::from(&Config::default().lockout);
        let mut req = Request::new("alice", Reply::from("x"), Reply::from("1"));
        req.ruser = "mallory".into();
        let su = charge_of(&limits, &req, ROOT, true);
        assert_eq!(su.source, "ruser:mallory");
        req.rhost = "192.0.2.7".into();
        assert_eq!(charge_of(&limits, &req, ROOT, true).source, "192.0.2.7");
        req.rhost.clear();
        req.ruser.clear();
        assert_eq!(
            charge_of(&limits, &req, ROOT, true).source,
            "",
            "the console"
        );
        // A non-root peer's own claims count for nothing.
        req.rhost = "192.0.2.7".into();
        req.ruser = "root".into();
        let me = Peer { uid: 1000, pid: 2 };
        assert_eq!(charge_of(&limits, &req, me, true).source, "uid:1000");
        let other = charge_of(&limits, &req, me, false);
        assert_eq!(other.keys[0].to_string(), "peer:uid:1000");
    }
}
