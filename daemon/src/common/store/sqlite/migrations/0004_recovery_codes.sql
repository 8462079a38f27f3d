-- 4: recovery codes, in the user's row (so the login path still reads
-- one row, the dummy's alike): the set's HMAC key, its ten hashes
-- (one blob, slot order) and a bit per used slot.
ALTER TABLE users ADD COLUMN recovery_key BLOB;
     ALTER TABLE users ADD COLUMN recovery_hashes BLOB;
     ALTER TABLE users ADD COLUMN recovery_used INTEGER NOT NULL DEFAULT 0;