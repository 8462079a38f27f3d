-- 1: users, the ledger and the known-good pairs.
CREATE TABLE users (
         name text COLLATE "C" PRIMARY KEY,
         phc text NOT NULL,
         totp_secret bytea,
         totp_pending bytea,
         totp_last_step bigint NOT NULL DEFAULT -1,
         created_at bigint NOT NULL,
         updated_at bigint NOT NULL
     );
     CREATE TABLE ledger (
         kind text COLLATE "C" NOT NULL,
         username text COLLATE "C" NOT NULL,
         source text COLLATE "C" NOT NULL,
         failures bigint NOT NULL,
         window_start bigint NOT NULL,
         locked_until bigint NOT NULL,
         last_seen bigint NOT NULL,
         locks bigint NOT NULL DEFAULT 0,
         locks_remembered_until bigint NOT NULL DEFAULT 0,
         PRIMARY KEY (kind, username, source)
     );
     CREATE TABLE known_good (
         username text COLLATE "C" NOT NULL,
         source text COLLATE "C" NOT NULL,
         last_success bigint NOT NULL,
         PRIMARY KEY (username, source)
     );