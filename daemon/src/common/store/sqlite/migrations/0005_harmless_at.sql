-- 5: when each ledger row stops limiting anything (no lock in force,
-- no failure in its window, no lock remembered), indexed: pruning and
-- eviction past the cap take only such rows, at a cost that does not
-- grow with the table. Rows from before take a day as their window.
ALTER TABLE ledger ADD COLUMN harmless_at INTEGER NOT NULL DEFAULT 0;
     UPDATE ledger SET harmless_at = max(locked_until, locks_remembered_until,
         CASE WHEN failures > 0 THEN window_start + 86400 ELSE 0 END);
     CREATE INDEX ledger_by_harmless_at ON ledger(harmless_at);