-- 3: a reservation counts its own inserts in one statement that every
-- attempt runs (a trigger fired only for new rows, so a first attempt
-- wrote more than a repeated one, and took longer).
-- Likewise the ledger's two secondary indexes: an attempt that adds
-- rows also wrote index pages that a repeated one did not. Their
-- users (prune, eviction past the cap, veilctl) scan instead.
-- And every write changes its row (`writes` counts them): SQLite
-- skips a write that leaves a row as it was, so a locked key asked
-- twice in one second committed nothing and answered sooner.
DROP TRIGGER ledger_count_insert;
     DROP INDEX ledger_by_last_seen;
     DROP INDEX ledger_by_source;
     ALTER TABLE ledger ADD COLUMN writes INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE ledger_size ADD COLUMN writes INTEGER NOT NULL DEFAULT 0;