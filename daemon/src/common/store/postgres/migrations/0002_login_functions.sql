-- 2: the login path's statements as functions, so that each costs one
-- round trip: locking an attempt's keys and reading them (a VOLATILE
-- function reads with a fresh snapshot after each statement, so after
-- the locks), and a success's writes (one call, one commit).
CREATE FUNCTION veil_lock_read(p_kinds text[], p_users text[], p_sources text[],
                                      p_user text, p_source text)
     RETURNS TABLE (r_kind text, r_username text, r_source text, r_failures bigint,
                    r_window_start bigint, r_locked_until bigint, r_locks bigint,
                    r_locks_remembered_until bigint)
     LANGUAGE plpgsql VOLATILE AS $$
     BEGIN
         -- One advisory lock per key, in the order of its id: attempts on
         -- the same keys queue, and never deadlock.
         PERFORM count(pg_advisory_xact_lock(h)) FROM (
             SELECT DISTINCT hashtextextended(k || chr(31) || u || chr(31) || s, 0) AS h
             FROM unnest(p_kinds, p_users, p_sources) AS t(k, u, s) ORDER BY h) AS sorted;
         -- The known-good pair first, as a row without a key.
         RETURN QUERY SELECT NULL::text, NULL::text, NULL::text, g.last_success,
                             0::bigint, 0::bigint, 0::bigint, 0::bigint
             FROM known_good g WHERE g.username = p_user AND g.source = p_source;
         RETURN QUERY SELECT l.kind, l.username, l.source, l.failures, l.window_start,
                             l.locked_until, l.locks, l.locks_remembered_until
             FROM ledger l JOIN unnest(p_kinds, p_users, p_sources) AS t(k, u, s)
               ON l.kind = t.k AND l.username = t.u AND l.source = t.s;
     END $$;

     -- A reservation in one call: takes the attempt's locks, checks that
     -- its known-good pair and the counters the plan was made from are
     -- still as read, and if so writes the plan (committed with the call);
     -- else writes nothing and returns what is there now, for a new plan.
     -- The first row says which: r_kind '!', r_failures 1 (written) or 0.
     CREATE FUNCTION veil_reserve(p_kinds text[], p_users text[], p_sources text[],
                                  p_user text, p_source text, p_known_good bigint,
                                  p_ek text[], p_eu text[], p_es text[], p_present boolean[],
                                  p_f bigint[], p_w bigint[], p_l bigint[], p_n bigint[],
                                  p_r bigint[], p_nf bigint[], p_nw bigint[], p_nl bigint[],
                                  p_nn bigint[], p_nr bigint[], p_now bigint)
     RETURNS TABLE (r_kind text, r_username text, r_source text, r_failures bigint,
                    r_window_start bigint, r_locked_until bigint, r_locks bigint,
                    r_locks_remembered_until bigint)
     LANGUAGE plpgsql VOLATILE AS $$
     DECLARE
         i integer;
         c record;
         kg bigint;
         changed boolean := false;
     BEGIN
         PERFORM count(pg_advisory_xact_lock(h)) FROM (
             SELECT DISTINCT hashtextextended(k || chr(31) || u || chr(31) || s, 0) AS h
             FROM unnest(p_kinds, p_users, p_sources) AS t(k, u, s) ORDER BY h) AS sorted;
         SELECT g.last_success INTO kg FROM known_good g
             WHERE g.username = p_user AND g.source = p_source;
         changed := kg IS DISTINCT FROM p_known_good;
         FOR i IN 1 .. coalesce(array_length(p_ek, 1), 0) LOOP
             EXIT WHEN changed;
             SELECT l.failures, l.window_start, l.locked_until, l.locks,
                    l.locks_remembered_until INTO c
                 FROM ledger l
                 WHERE l.kind = p_ek[i] AND l.username = p_eu[i] AND l.source = p_es[i];
             changed := FOUND <> p_present[i]
                 OR (FOUND AND ROW(c.failures, c.window_start, c.locked_until, c.locks,
                                   c.locks_remembered_until)
                     IS DISTINCT FROM ROW(p_f[i], p_w[i], p_l[i], p_n[i], p_r[i]));
         END LOOP;
         IF changed THEN
             RETURN QUERY SELECT '!'::text, NULL::text, NULL::text, 0::bigint,
                                 0::bigint, 0::bigint, 0::bigint, 0::bigint;
             RETURN QUERY SELECT NULL::text, NULL::text, NULL::text, kg,
                                 0::bigint, 0::bigint, 0::bigint, 0::bigint
                 WHERE kg IS NOT NULL;
             RETURN QUERY SELECT l.kind, l.username, l.source, l.failures, l.window_start,
                                 l.locked_until, l.locks, l.locks_remembered_until
                 FROM ledger l JOIN unnest(p_kinds, p_users, p_sources) AS t(k, u, s)
                   ON l.kind = t.k AND l.username = t.u AND l.source = t.s;
             RETURN;
         END IF;
         INSERT INTO ledger AS l (kind, username, source, failures, window_start,
                                  locked_until, locks, locks_remembered_until, last_seen)
             SELECT k, u, s, f, w, lu, n, r, p_now
             FROM unnest(p_ek, p_eu, p_es, p_nf, p_nw, p_nl, p_nn, p_nr)
                  AS t(k, u, s, f, w, lu, n, r)
             ON CONFLICT (kind, username, source) DO UPDATE SET
                 failures = excluded.failures, window_start = excluded.window_start,
                 locked_until = excluded.locked_until, locks = excluded.locks,
                 locks_remembered_until = excluded.locks_remembered_until,
                 last_seen = excluded.last_seen;
         RETURN QUERY SELECT '!'::text, NULL::text, NULL::text, 1::bigint,
                             0::bigint, 0::bigint, 0::bigint, 0::bigint;
     END $$;

     CREATE FUNCTION veil_success(p_user text, p_step bigint, p_kinds text[], p_users text[],
                                  p_sources text[], p_cleared boolean[], p_limits bigint[],
                                  p_source text, p_now bigint, p_known_good boolean,
                                  p_phc text)
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