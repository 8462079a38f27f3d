-- 2: escalating locks, and the (user, source) pairs that succeeded.
ALTER TABLE ledger ADD COLUMN locks INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE ledger ADD COLUMN locks_remembered_until INTEGER NOT NULL DEFAULT 0;
     CREATE TABLE known_good (
         user TEXT NOT NULL,
         source TEXT NOT NULL,
         last_success INTEGER NOT NULL,
         PRIMARY KEY (user, source)
     ) STRICT, WITHOUT ROWID;
     CREATE INDEX known_good_by_time ON known_good(last_success);