//! The setup errors as an admin reads them: typed now, with their sources,
//! in the words they had as text.

use std::error::Error;
use std::path::Path;

use super::connect::tls_builder;
use super::*;

/// The error of a CA file that must be refused.
fn refused(ca: &Path) -> TlsError {
    match tls_builder(ca) {
        Ok(_) => panic!("{} was accepted", ca.display()),
        Err(e) => e,
    }
}

fn io() -> std::io::Error {
    std::io::Error::from_raw_os_error(libc::ELOOP)
}

/// Each expected line is the old main's format string, filled in: a word
/// changed in a variant's message fails here.
#[test]
fn setup_errors_keep_their_words_and_their_sources() {
    let path = Path::new("/etc/veil/pgpass");
    let open = PasswordFileError::Open {
        path: path.into(),
        source: io(),
    };
    assert_eq!(
        open.to_string(),
        format!(
            "password_file /etc/veil/pgpass: {} (a symlink is refused)",
            io()
        )
    );
    assert!(open.source().is_some(), "the io::Error is kept");
    let readable = PasswordFileError::Readable {
        path: path.into(),
        mode: 0o640,
    };
    assert_eq!(
        readable.to_string(),
        "password_file /etc/veil/pgpass may be read by group or others (mode 640); \
         run: chmod 600 /etc/veil/pgpass"
    );
    let owner = PasswordFileError::Owner {
        path: path.into(),
        uid: 1000,
        daemon_user: "veil".into(),
        me: 0,
    };
    assert_eq!(
        owner.to_string(),
        "password_file /etc/veil/pgpass is owned by uid 1000, neither root, veil nor uid 0; \
         run: chown veil /etc/veil/pgpass"
    );
    let empty = PasswordFileError::Empty { path: path.into() };
    assert_eq!(empty.to_string(), "password_file /etc/veil/pgpass is empty");
    let setup = |source: SetupError| StoreError::PostgresSetup {
        target: "postgresql://veil@db.example/veil".into(),
        source,
    };
    assert_eq!(
        setup(SetupError::NoCaFile).to_string(),
        "PostgreSQL postgresql://veil@db.example/veil: sslmode = \"verify-full\" needs ca_file"
    );
    assert_eq!(
        setup(SetupError::UrlPassword).to_string(),
        "PostgreSQL postgresql://veil@db.example/veil: the URL holds a password: \
         use a password_file"
    );
    let from_file = setup(open.into());
    assert_eq!(
        from_file.to_string(),
        format!(
            "PostgreSQL postgresql://veil@db.example/veil: password_file /etc/veil/pgpass: {} \
             (a symlink is refused)",
            io()
        )
    );
    let chain = from_file.source().and_then(Error::source);
    assert!(
        chain.is_some_and(|e| e.to_string() == io().to_string()),
        "the chain reaches the io::Error: {chain:?}"
    );
    let conflict = StoreError::CopyConflict {
        target: "postgresql://veil@db.example/veil".into(),
        source: UserConflict {
            user: "dave".into(),
        },
    };
    assert_eq!(
        conflict.to_string(),
        "PostgreSQL postgresql://veil@db.example/veil: user dave exists there with a different \
         password or TOTP state; nothing was copied"
    );
}

/// A CA file with no certificate, and one that is not PEM: the messages
/// name the file, and OpenSSL's reason is kept as the source.
#[test]
fn ca_file_errors_name_the_file_and_keep_openssl_reason() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let err = refused(&empty);
    assert_eq!(
        err.to_string(),
        format!("ca_file {} holds no certificate", empty.display())
    );
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(
        &garbage,
        "-----BEGIN CERTIFICATE-----\nnot base64 !!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let err = refused(&garbage);
    assert!(matches!(err, TlsError::Certificates { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with(&format!("ca_file {}: ", garbage.display())),
        "{err}"
    );
    assert!(err.source().is_some(), "OpenSSL's error stack is kept");
    let missing = dir.path().join("missing.pem");
    let err = refused(&missing);
    assert!(matches!(err, TlsError::Read { .. }), "{err:?}");
    assert!(err.source().is_some());
}
