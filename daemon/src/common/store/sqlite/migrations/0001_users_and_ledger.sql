-- 1: users and the ledger.
CREATE TABLE users (
         name TEXT PRIMARY KEY NOT NULL,
         phc TEXT NOT NULL,
         totp_secret BLOB,
         totp_pending BLOB,
         totp_last_step INTEGER NOT NULL DEFAULT -1,
         created_at INTEGER NOT NULL,
         updated_at INTEGER NOT NULL
     ) STRICT;
     CREATE TABLE ledger (
         kind TEXT NOT NULL,
         user TEXT NOT NULL,
         source TEXT NOT NULL,
         failures INTEGER NOT NULL,
         window_start INTEGER NOT NULL,
         locked_until INTEGER NOT NULL,
         last_seen INTEGER NOT NULL,
         PRIMARY KEY (kind, user, source)
     ) STRICT, WITHOUT ROWID;
     CREATE INDEX ledger_by_last_seen ON ledger(last_seen);
     CREATE INDEX ledger_by_source ON ledger(source);
     CREATE TABLE ledger_size (id INTEGER PRIMARY KEY CHECK (id = 1), rows INTEGER NOT NULL) STRICT;
     INSERT INTO ledger_size (id, rows) VALUES (1, 0);
     CREATE TRIGGER ledger_count_insert AFTER INSERT ON ledger
         BEGIN UPDATE ledger_size SET rows = rows + 1 WHERE id = 1; END;
     CREATE TRIGGER ledger_count_delete AFTER DELETE ON ledger
         BEGIN UPDATE ledger_size SET rows = rows - 1 WHERE id = 1; END;