-- 5: the functions move out of the migrations into functions.sql, applied
-- after them whenever its generation is higher than the one recorded here
-- (0: none yet; migrations 2 to 4 made this database's functions, and
-- generation 1 replaces them with the same). Its SHA-256 beside it, so
-- that two builds of one generation with other texts are noticed.
-- Additive: the hosts of 0.3.0 and 0.2.0 read veil_schema's version and
-- readers_from only, and call the functions generation 1 keeps as they were.
ALTER TABLE veil_schema ADD COLUMN functions_generation integer NOT NULL DEFAULT 0,
                        ADD COLUMN functions_sha256 text;
