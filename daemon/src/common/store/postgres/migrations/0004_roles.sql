-- 4: least privilege. Hosts log in as members of veil_login, which runs
-- the login path only: it reads the columns a login verifies, writes the
-- ledger and the known-good pairs, and of users only the two
-- compare-and-set columns (a code's step, a recovery code's bit). It can
-- neither insert, update nor delete a user's hash, TOTP secret or
-- recovery codes. veil_admin (veilctl's user, TOTP and recovery commands)
-- can. Self-service (veild's enrolment, passwd and recovery codes) goes
-- through the SECURITY DEFINER functions below, executable by members of
-- veil_self_service only: each checks what the server can check of what
-- veild checked. Additive: the tables and the login functions older hosts
-- call are unchanged, and the owner keeps every privilege.

-- The fleet's one dummy row (name ''), which no login can name: a host
-- may write it, and nothing else of users.
CREATE FUNCTION veil_put_dummy(p_phc text, p_secret bytea, p_last_step bigint, p_now bigint,
                               p_rkey bytea, p_rhashes bytea, p_rused bigint, p_params text)
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
CREATE FUNCTION veil_self_passwd(p_user text, p_old_phc text, p_new_phc text, p_now bigint)
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
CREATE FUNCTION veil_self_enrol(p_user text, p_secret bytea, p_step bigint, p_now bigint,
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
CREATE FUNCTION veil_self_recovery(p_user text, p_key bytea, p_hashes bytea, p_now bigint)
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
CREATE FUNCTION veil_list_users()
    RETURNS TABLE (r_name text, r_totp boolean, r_pending boolean, r_created bigint,
                   r_updated bigint, r_phc text)
    LANGUAGE sql STABLE SECURITY DEFINER AS $$
    SELECT name, totp_secret IS NOT NULL, totp_pending IS NOT NULL, created_at, updated_at, phc
        FROM users WHERE name <> '' ORDER BY name;
$$;

-- The roles and their grants; run again by `veilctl store init`, so that
-- roles a superuser makes later (when veil's owner may not create roles)
-- get them. Roles are the cluster's; grants are this database's.
CREATE FUNCTION veil_grant_roles() RETURNS text LANGUAGE plpgsql AS $$
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
