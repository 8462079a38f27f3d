-- 3: recovery codes, in the user's row (the login path still reads one
-- row, the dummy's alike): the set's HMAC key, its hashes (one blob,
-- slot order) and a bit per used slot; a success that used a code
-- takes its slot's bit by compare-and-set in veil_success.
ALTER TABLE users ADD COLUMN recovery_key bytea,
                       ADD COLUMN recovery_hashes bytea,
                       ADD COLUMN recovery_used bigint NOT NULL DEFAULT 0;
     DROP FUNCTION veil_success(text, bigint, text[], text[], text[], boolean[], bigint[],
                                text, bigint, boolean, text);
     CREATE FUNCTION veil_success(p_user text, p_step bigint, p_kinds text[], p_users text[],
                                  p_sources text[], p_cleared boolean[], p_limits bigint[],
                                  p_source text, p_now bigint, p_known_good boolean,
                                  p_phc text, p_recovery_bit bigint, p_recovery_key bytea)
     RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
     BEGIN
         PERFORM count(pg_advisory_xact_lock(h)) FROM (
             SELECT DISTINCT hashtextextended(k || chr(31) || u || chr(31) || s, 0) AS h
             FROM unnest(p_kinds, p_users, p_sources) AS t(k, u, s) ORDER BY h) AS sorted;
         -- Compare-and-set: a code racing itself on any host wins once.
         IF p_step IS NOT NULL THEN
             UPDATE users SET totp_last_step = p_step
                 WHERE name = p_user AND totp_last_step < p_step;
             IF NOT FOUND THEN
                 RETURN false;
             END IF;
         END IF;
         -- Likewise a recovery code's slot, in the set that was checked.
         IF p_recovery_bit IS NOT NULL THEN
             UPDATE users SET recovery_used = recovery_used | p_recovery_bit
                 WHERE name = p_user AND recovery_key = p_recovery_key
                   AND recovery_used & p_recovery_bit = 0;
             IF NOT FOUND THEN
                 RETURN false;
             END IF;
         END IF;
         DELETE FROM ledger l USING unnest(p_kinds, p_users, p_sources, p_cleared) AS t(k, u, s, c)
             WHERE t.c AND l.kind = t.k AND l.username = t.u AND l.source = t.s;
         UPDATE ledger l SET failures = greatest(l.failures - 1, 0),
                 locked_until = CASE WHEN l.failures - 1 < t.lim THEN 0 ELSE l.locked_until END,
                 last_seen = p_now
             FROM unnest(p_kinds, p_users, p_sources, p_cleared, p_limits) AS t(k, u, s, c, lim)
             WHERE NOT t.c AND l.kind = t.k AND l.username = t.u AND l.source = t.s;
         IF p_known_good THEN
             INSERT INTO known_good (username, source, last_success)
                 VALUES (p_user, p_source, p_now)
                 ON CONFLICT (username, source) DO UPDATE SET last_success = excluded.last_success;
         END IF;
         IF p_phc IS NOT NULL THEN
             UPDATE users SET phc = p_phc, updated_at = p_now WHERE name = p_user;
         END IF;
         RETURN true;
     END $$;