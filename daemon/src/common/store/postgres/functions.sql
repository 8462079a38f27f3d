-- Every PostgreSQL function veil calls, as it is now. Rules: edit here, never in a migration;
-- any change raises FUNCTIONS.generation (functions.rs: its test holds each generation's
-- SHA-256); a change older hosts would notice (signature, result, meaning) gets a new name
-- (veil_reserve_v2) and the old one stays while READERS_FROM admits hosts that call it; a
-- new function gets its grants in veil_grant_roles. CONTRIBUTING.md, "A PostgreSQL function".
--
-- veild applies this file after the migrations, in their transaction and under their lock,
-- when the database's veil_schema.functions_generation is lower than this build's (or equal
-- with another SHA-256: a development build), never when it is higher. CREATE OR REPLACE keeps
-- a function's owner and grants, and resets its SET options: the last line runs
-- veil_grant_roles, which sets the definer functions' search_path again.
--
-- Generation 1 is migrations 2 to 4's functions as 0.3.0 made them (same signatures, same
-- bodies): a 0.3.0 host runs on the database after this file is applied.

CREATE OR REPLACE FUNCTION veil_lock_read(p_kinds text[], p_users text[], p_sources text[],
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
CREATE OR REPLACE FUNCTION veil_reserve(p_kinds text[], p_users text[], p_sources text[],
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

CREATE OR REPLACE FUNCTION veil_success(p_user text, p_step bigint, p_kinds text[], p_users text[],
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

-- The fleet's one dummy row (name ''), which no login can name: a host
-- may write it, and nothing else of users.
CREATE OR REPLACE FUNCTION veil_put_dummy(p_phc text, p_secret bytea, p_last_step bigint,
                                          p_now bigint, p_rkey bytea, p_rhashes bytea,
                                          p_rused bigint, p_params text)
    RETURNS void LANGUAGE sql SECURITY DEFINER AS $$
    INSERT INTO users (name, phc, totp_secret, totp_last_step, recovery_key,
                       recovery_hashes, recovery_used, created_at, updated_at)
        VALUES ('', p_phc, p_secret, p_last_step, p_rkey, p_rhashes, p_rused, p_now, p_now)
        ON CONFLICT (name) DO UPDATE SET phc = excluded.phc,
            totp_secret = excluded.totp_secret, totp_last_step = excluded.totp_last_step,
            recovery_key = excluded.recovery_key, recovery_hashes = excluded.recovery_hashes,
            recovery_used = excluded.recovery_used, updated_at = excluded.updated_at
        WHERE left(users.phc, length(p_params)) IS DISTINCT FROM p_params
           OR (users.totp_secret IS NULL) <> (excluded.totp_secret IS NULL)
           OR (users.recovery_key IS NULL) <> (excluded.recovery_key IS NULL);
$$;

-- A user's own password: names the hash it replaces (veild verified the
-- current password against it), only an argon2id hash, never the dummy's
-- nor a system account's row (its passwords are the system's).
CREATE OR REPLACE FUNCTION veil_self_passwd(p_user text, p_old_phc text, p_new_phc text,
                                            p_now bigint)
    RETURNS boolean LANGUAGE plpgsql SECURITY DEFINER AS $$
    BEGIN
        UPDATE users SET phc = p_new_phc, updated_at = p_now
            WHERE name = p_user AND name <> '' AND phc = p_old_phc AND phc <> '!system'
              AND p_new_phc LIKE '$argon2id$%';
        RETURN FOUND;
    END $$;

-- A user's own TOTP secret, confirmed by a code of it (step p_step, so it
-- cannot be replayed): a secret of at least 16 bytes, and a new row only
-- for a system account (phc '!system', no veil password).
CREATE OR REPLACE FUNCTION veil_self_enrol(p_user text, p_secret bytea, p_step bigint, p_now bigint,
                                           p_system boolean)
    RETURNS boolean LANGUAGE plpgsql SECURITY DEFINER AS $$
    BEGIN
        IF p_user = '' OR p_secret IS NULL OR length(p_secret) < 16 OR p_step < 0 THEN
            RETURN false;
        END IF;
        IF p_system THEN
            INSERT INTO users (name, phc, created_at, updated_at)
                VALUES (p_user, '!system', p_now, p_now) ON CONFLICT (name) DO NOTHING;
        END IF;
        UPDATE users SET totp_secret = p_secret, totp_pending = NULL,
                         totp_last_step = p_step, updated_at = p_now
            WHERE name = p_user;
        RETURN FOUND;
    END $$;

-- A user's own recovery codes: only beside an active secret (veild
-- refuses them without one), all unused.
CREATE OR REPLACE FUNCTION veil_self_recovery(p_user text, p_key bytea, p_hashes bytea,
                                              p_now bigint)
    RETURNS boolean LANGUAGE plpgsql SECURITY DEFINER AS $$
    BEGIN
        IF p_key IS NULL OR p_hashes IS NULL THEN
            RETURN false;
        END IF;
        UPDATE users SET recovery_key = p_key, recovery_hashes = p_hashes, recovery_used = 0,
                         updated_at = p_now
            WHERE name = p_user AND name <> '' AND totp_secret IS NOT NULL;
        RETURN FOUND;
    END $$;

-- The users as `veilctl user list` and `veilctl enable` show them: whether
-- a secret is pending, not the secret (a login role may not read it).
CREATE OR REPLACE FUNCTION veil_list_users()
    RETURNS TABLE (r_name text, r_totp boolean, r_pending boolean, r_created bigint,
                   r_updated bigint, r_phc text)
    LANGUAGE sql STABLE SECURITY DEFINER AS $$
    SELECT name, totp_secret IS NOT NULL, totp_pending IS NOT NULL, created_at, updated_at, phc
        FROM users WHERE name <> '' ORDER BY name;
$$;

-- The roles and their grants; run again by `veilctl store init`, so that
-- roles a superuser makes later (when veil's owner may not create roles)
-- get them. Roles are the cluster's; grants are this database's.
CREATE OR REPLACE FUNCTION veil_grant_roles() RETURNS text LANGUAGE plpgsql AS $$
    DECLARE
        r text;
        missing text := '';
        s text := current_schema();
    BEGIN
        FOREACH r IN ARRAY ARRAY['veil_login', 'veil_admin', 'veil_self_service'] LOOP
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) THEN
                BEGIN
                    EXECUTE format('CREATE ROLE %I NOLOGIN', r);
                EXCEPTION WHEN insufficient_privilege THEN
                    missing := missing || ' ' || r;
                WHEN duplicate_object OR unique_violation THEN
                    NULL; -- made meanwhile, for another database of the cluster
                END;
            END IF;
        END LOOP;
        -- Definer functions run with their owner's rights: a fixed search
        -- path, so that no one's temporary table stands in for users.
        FOREACH r IN ARRAY ARRAY[
                'veil_put_dummy(text, bytea, bigint, bigint, bytea, bytea, bigint, text)',
                'veil_self_passwd(text, text, text, bigint)',
                'veil_self_enrol(text, bytea, bigint, bigint, boolean)',
                'veil_self_recovery(text, bytea, bytea, bigint)',
                'veil_list_users()'] LOOP
            EXECUTE format('ALTER FUNCTION %s SET search_path = %I, pg_temp', r, s);
            EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', r);
        END LOOP;
        REVOKE ALL ON users, ledger, known_good, veil_schema FROM PUBLIC;
        REVOKE ALL ON FUNCTION veil_grant_roles() FROM PUBLIC;
        REVOKE ALL ON FUNCTION veil_lock_read(text[], text[], text[], text, text) FROM PUBLIC;
        REVOKE ALL ON FUNCTION veil_reserve(text[], text[], text[], text, text, bigint, text[],
            text[], text[], boolean[], bigint[], bigint[], bigint[], bigint[], bigint[],
            bigint[], bigint[], bigint[], bigint[], bigint[], bigint) FROM PUBLIC;
        REVOKE ALL ON FUNCTION veil_success(text, bigint, text[], text[], text[], boolean[],
            bigint[], text, bigint, boolean, text, bigint, bytea) FROM PUBLIC;
        FOREACH r IN ARRAY ARRAY['veil_login', 'veil_admin', 'veil_self_service'] LOOP
            CONTINUE WHEN NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r);
            BEGIN
                -- Only the schema's owner may (PostgreSQL 15's public is
                -- the database owner's; older ones', the superuser's).
                EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', s, r);
            EXCEPTION WHEN insufficient_privilege THEN
                missing := missing || ' USAGE ON SCHEMA ' || s || ' TO ' || r;
            END;
            EXECUTE format('GRANT SELECT ON veil_schema TO %I', r);
            EXECUTE format('GRANT SELECT (name, phc, totp_secret, totp_last_step, recovery_key,
                recovery_hashes, recovery_used) ON users TO %I', r);
        END LOOP;
        IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'veil_login') THEN
            GRANT UPDATE (totp_last_step, recovery_used) ON users TO veil_login;
            GRANT SELECT, INSERT, UPDATE, DELETE ON ledger, known_good TO veil_login;
            GRANT EXECUTE ON FUNCTION veil_lock_read(text[], text[], text[], text, text),
                veil_reserve(text[], text[], text[], text, text, bigint, text[], text[], text[],
                    boolean[], bigint[], bigint[], bigint[], bigint[], bigint[], bigint[],
                    bigint[], bigint[], bigint[], bigint[], bigint),
                veil_success(text, bigint, text[], text[], text[], boolean[], bigint[], text,
                    bigint, boolean, text, bigint, bytea),
                veil_put_dummy(text, bytea, bigint, bigint, bytea, bytea, bigint, text),
                veil_list_users() TO veil_login;
        END IF;
        IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'veil_self_service') THEN
            GRANT EXECUTE ON FUNCTION veil_self_passwd(text, text, text, bigint),
                veil_self_enrol(text, bytea, bigint, bigint, boolean),
                veil_self_recovery(text, bytea, bytea, bigint) TO veil_self_service;
        END IF;
        IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'veil_admin') THEN
            GRANT SELECT, INSERT, UPDATE, DELETE ON users, ledger, known_good TO veil_admin;
            GRANT EXECUTE ON FUNCTION veil_lock_read(text[], text[], text[], text, text),
                veil_reserve(text[], text[], text[], text, text, bigint, text[], text[], text[],
                    boolean[], bigint[], bigint[], bigint[], bigint[], bigint[], bigint[],
                    bigint[], bigint[], bigint[], bigint[], bigint),
                veil_success(text, bigint, text[], text[], text[], boolean[], bigint[], text,
                    bigint, boolean, text, bigint, bytea),
                veil_put_dummy(text, bytea, bigint, bigint, bytea, bytea, bigint, text),
                veil_self_passwd(text, text, text, bigint),
                veil_self_enrol(text, bytea, bigint, bigint, boolean),
                veil_self_recovery(text, bytea, bytea, bigint), veil_list_users() TO veil_admin;
        END IF;
        RETURN trim(missing);
    END $$;

SELECT veil_grant_roles();
